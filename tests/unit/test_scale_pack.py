"""pack's scale options with fake collaborators: the memory sweep's choice, --mode batch, SnapStart."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from packager.config import Arch, MemoryObjective
from packager.memory import SweepPoint, choose
from packager.pack import pack
from packager.quota import QuotaUnavailableError
from tests.unit.test_pack_stages import FAKES, config, fake_steps  # noqa: F401 (autouse: the fake recipe steps)

SEEN: list[tuple[int, ...]] = []


def fake_sweep(model_dir: Path, sizes: tuple[int, ...], objective: MemoryObjective, arch: Arch, floor: int):  # type: ignore[no-untyped-def]
    assert (model_dir / "manifest.json").is_file() and (model_dir / "warmup.json").is_file()
    SEEN.append(sizes)
    points = tuple(
        SweepPoint.measured(arch, {"memory_mb": m, "mean_ms": 40.0 * 1769 / min(m, 1769), "p50_ms": 1.0, "p95_ms": 2.0,
                                   "billed_ms": 40.0 * 1769 / min(m, 1769), "calls": 5, "throttled_ms": 1.0,
                                   "cpu_vcpus": min(1.0, m / 1769)})
        for m in sizes
    )  # fmt: skip
    return choose(points, objective, floor, "a fake sweep")


def no_quota(*args: object) -> None:
    raise QuotaUnavailableError("cannot create a cgroup here")


def test_memory_size_is_the_sweeps_choice_and_the_report_shows_the_table(tmp_path: Path) -> None:
    result = pack(config(tmp_path, recipes=("copy",)), collaborators=replace(FAKES, sweep=fake_sweep))
    assert SEEN[-1][0] == 128 and SEEN[-1][-1] == 3008
    template = yaml.safe_load((result.bundle / "template.yaml").read_text())
    assert template["Resources"]["TinyFunction"]["Properties"]["MemorySize"] == 1769  # fastest of the tied cheapest
    report = json.loads((result.bundle / "report.json").read_text())
    assert report["memory"]["chosen"]["memory_mb"] == report["cost"]["memory_mb"] == 1769
    assert "| 1769 | 1.00 | per core |" in (result.bundle / "report.md").read_text()
    manifest = json.loads((result.bundle / "function" / "model" / "manifest.json").read_text())
    assert manifest["runtime"] == {"memory_mb": 1769, "intra_op_threads": None}


def test_below_one_vcpu_the_bundle_runs_one_onnxruntime_thread(tmp_path: Path) -> None:
    result = pack(config(tmp_path, recipes=("copy",)), collaborators=replace(FAKES, sweep=no_quota))
    manifest = json.loads((result.bundle / "function" / "model" / "manifest.json").read_text())
    assert manifest["runtime"] == {"memory_mb": 512, "intra_op_threads": 1}


def test_without_a_cpu_quota_memory_follows_the_peak_rss_and_says_so(tmp_path: Path) -> None:
    result = pack(config(tmp_path, recipes=("copy",)), collaborators=replace(FAKES, sweep=no_quota))
    report = json.loads((result.bundle / "report.json").read_text())
    assert report["memory"] is None and any("cannot create a cgroup" in note for note in report["notes"])


def test_batch_mode_adds_the_batch_stack_and_snapstart_follows_the_flag(tmp_path: Path) -> None:
    result = pack(config(tmp_path, recipes=("copy",), mode="batch", snapstart=True, arch="arm64"), collaborators=FAKES)
    resources = yaml.safe_load((result.bundle / "template.yaml").read_text())["Resources"]
    assert {"TinyBatchFunction", "TinyBatchQueue", "TinyBatchDLQ", "TinyAsyncFailures", "TinyBatchStateMachine"} <= set(
        resources
    )
    for name in ("TinyFunction", "TinyBatchFunction"):
        assert resources[name]["Properties"]["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    markdown = (result.bundle / "report.md").read_text()
    assert "SnapStart on: --snapstart" in markdown and "arm64: the recipes were chosen" in markdown
    assert json.loads((result.bundle / "function" / "model" / "warmup.json").read_text())["inputs"]


def test_a_batch_zip_builds_both_functions_from_its_makefile(tmp_path: Path) -> None:
    """`sam build` runs build-<LogicalId> for every function whose BuildMethod is makefile."""
    result = pack(config(tmp_path, recipes=("copy",), mode="batch", package_type="zip"), collaborators=FAKES)
    makefile = (result.bundle / "function" / "Makefile").read_text()
    assert "build-TinyFunction build-TinyBatchFunction:" in makefile


def test_snapstart_is_off_by_default_for_a_fast_loading_model(tmp_path: Path) -> None:
    result = pack(config(tmp_path, recipes=("copy",)), collaborators=FAKES)
    report = json.loads((result.bundle / "report.json").read_text())
    assert report["snapstart"]["enabled"] is False and "under the 500 ms" in report["snapstart"]["why"]
    with pytest.raises(Exception, match="provisioned concurrency"):
        config(tmp_path, snapstart=True, provisioned_concurrency=2)
