"""`pack`'s orchestration with fake collaborators and fake recipe steps: no wheel index, no measuring
subprocess, no S3. The model is a real (tiny) ONNX graph and onnxruntime computes its reference outputs."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from handlers.contract import S3Uri
from handlers.manifest import Manifest
from packager.config import Budget, PackageType, PackConfig
from packager.errors import NoFitError
from packager.measure import Profile
from packager.pack import Collaborators, pack
from packager.quality_job import QualityCheck
from packager.recipes.base import RecipeContext, Transform
from packager.recipes.registry import STEPS, Step
from packager.timing import Latency, Timings
from packager.wheels import WheelSet
from tests.conftest import matmul_model

RUNS: Counter[str] = Counter()
SIZES = {"fp32": 4000, "copy": 3000, "shrink": 1000, "lossy": 500}


class Copy(Transform):
    """Stands in for a real step: copies the model and counts how often it ran."""

    def __init__(self, name: str) -> None:
        self.name = name

    def apply(self, source: Path, target: Path, ctx: RecipeContext) -> None:
        RUNS[self.name] += 1
        if self.name == "broken":
            raise RuntimeError("\x1b[31mthis step always fails\x1b[0m\nwith a second line")
        shutil.copyfile(source, target)


@pytest.fixture(autouse=True)
def fake_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    RUNS.clear()
    for name in ("copy", "shrink", "lossy", "broken"):
        monkeypatch.setitem(STEPS, name, Step(name, __name__, "Copy", f"fake {name}", args=(name,)))


def tiny_model(path: Path) -> Path:
    return matmul_model(path, np.arange(12, dtype=np.float32).reshape(4, 3) / 10)


def fake_measure(path: Path, check: QualityCheck, threads: int | None = None) -> Profile:
    """Size and quality by the last step in the file name: the recipe's own figures, deterministic."""
    last = path.stem.split("+")[-1]
    size = SIZES.get(last, 4000)
    quality = 0.9 if last == "lossy" else 1.0
    return Profile(size, quality, check.metric.kind, 5.0, 80.0)


TIMED: list[list[str]] = []


def fake_time(paths: Sequence[Path], data: Any, manifest: Any) -> Timings:
    """Every candidate equally fast: ties go to the smaller."""
    TIMED.append([path.stem for path in paths])
    return Timings(tuple(Latency(1.0, 0.95, 1.05, 1.1, 2.0, 2.2, 15) for _ in paths), 90.0)


def fake_wheels(python: str, arch: Any, extras: tuple[str, ...]) -> WheelSet:
    return WheelSet((), ("numpy==0", "onnxruntime==0"), (2, 17))


UPLOADS: list[tuple[S3Uri, str]] = []


def fake_upload(store: S3Uri, model: Path, manifest: Manifest) -> S3Uri:
    UPLOADS.append((store, manifest.sha256))
    return store.join(manifest.name, "model.onnx")


def fake_probe(path: Path, data: Any, rows: int) -> dict[str, float]:
    return {"peak_rss_mb": 80.0 + rows}


FAKES = Collaborators(wheels=fake_wheels, measure=fake_measure, time=fake_time, upload=fake_upload, probe=fake_probe)


def config(tmp_path: Path, **changes: Any) -> PackConfig:
    model = tiny_model(tmp_path / "tiny.onnx")
    return PackConfig(model=str(model), name="tiny", output_dir=tmp_path / "out", python="3.12", **changes)


def test_every_chain_prefix_runs_once(tmp_path: Path) -> None:
    recipes = ("copy", "copy+shrink", "copy+shrink+lossy", "copy+broken", "copy+broken+shrink")
    TIMED.clear()
    result = pack(config(tmp_path, recipes=recipes), collaborators=FAKES)
    assert RUNS == {"copy": 1, "shrink": 1, "lossy": 1, "broken": 1}
    assert TIMED == [["fp32", "copy", "copy+shrink", "copy+shrink+lossy"]]  # every model that runs, timed together
    verdicts = {v.candidate.recipe: v.reason for v in result.fit.verdicts}
    assert (
        verdicts["copy+broken"]
        == verdicts["copy+broken+shrink"]
        == "failed: recipe step broken failed: this step always fails"
    )
    assert verdicts["copy+shrink+lossy"] == "drop 10.00 pts > 1.00 allowed"
    assert result.fit.chosen.recipe == "copy+shrink"


def test_report_json_and_markdown_say_the_same(tmp_path: Path) -> None:
    result = pack(config(tmp_path, recipes=("copy", "copy+shrink", "copy+broken")), collaborators=FAKES)
    bundle = result.bundle
    data = json.loads((bundle / "report.json").read_text())
    markdown = (bundle / "report.md").read_text()
    assert (bundle / "report.png").stat().st_size > 1000
    assert f"Chosen: **{data['chosen']}**" in markdown
    table = [line for line in markdown.splitlines() if line.startswith("| ") and not line.startswith("| recipe |")]
    assert [row.split(" | ")[0].lstrip("| ") for row in table] == [c["recipe"] for c in data["candidates"]]
    for row, candidate in zip(table, data["candidates"], strict=True):
        verdict = row.rstrip(" |").rsplit(" | ", 1)[-1]
        assert verdict == ("CHOSEN" if candidate["recipe"] == data["chosen"] else candidate["verdict"])
    for part, size in data["package_parts_bytes"].items():
        assert f"- {part}: {size / 1e6:.2f} MB" in markdown
    assert f"- total: {data['package_bytes'] / 1e6:.2f} MB" in markdown
    failed = next(c for c in data["candidates"] if c["recipe"] == "copy+broken")
    assert failed["error"] == "recipe step broken failed: this step always fails"
    assert "with a second line" in failed["detail"] and "\x1b" not in failed["error"]


def test_a_zip_budget_given_in_python_counts_no_base_image(tmp_path: Path) -> None:
    """The bench script's old bug: a zip budget without --package counted a 600 MB image base."""
    result = pack(config(tmp_path, budget=Budget.parse("zip"), recipes=("copy",)), collaborators=FAKES)
    report = json.loads((result.bundle / "report.json").read_text())
    assert report["budget"] == {"name": "zip", "limit_bytes": 262_144_000, "package": "zip"}
    assert not any("base image" in part for part in report["package_parts_bytes"])
    assert all(c["package_bytes"] < 1_000_000 for c in report["candidates"])  # handler code and model only
    assert "Runtime: python3.12" in (result.bundle / "template.yaml").read_text()


def runtime_bytes() -> int:
    from packager.size import handler_files

    return sum(path.stat().st_size for path in handler_files())


def test_nothing_fits_writes_nothing_and_keeps_the_measurements(tmp_path: Path) -> None:
    budget = Budget.parse(str(runtime_bytes() + 500))  # room for the runtime, not for any model (1000+ bytes)
    with pytest.raises(NoFitError) as caught:
        pack(
            config(tmp_path, budget=budget, package_type=PackageType.ZIP, recipes=("copy", "copy+shrink")),
            collaborators=FAKES,
        )
    rejection = caught.value.rejection
    assert rejection is not None
    assert [v.candidate.recipe for v in rejection.verdicts] == ["fp32", "copy", "copy+shrink"]
    assert not (tmp_path / "out" / "tiny").exists()
    assert not list((tmp_path / "out").iterdir())
    message = str(caught.value)
    assert "every candidate is over the" in message and "leaving 0.0 MB for the model" in message
    assert "--max-drop" not in message


def test_a_runtime_over_the_budget_is_named_before_anything_is_measured(tmp_path: Path) -> None:
    RUNS.clear()
    with pytest.raises(NoFitError) as caught:
        pack(config(tmp_path, budget=Budget.parse("100"), package_type=PackageType.ZIP, recipes=("copy",)),
             collaborators=FAKES)  # fmt: skip
    message = str(caught.value)
    assert message.startswith("the runtime alone is ") and "before any model" in message
    assert "What fits: --budget zip-upload" in message and "--package image" in message
    assert "--max-drop can fix" in message and not RUNS


def test_a_model_store_ships_the_manifest_and_points_the_function_at_s3(tmp_path: Path) -> None:
    from packager.emulator import open_bundle

    UPLOADS.clear()
    result = pack(config(tmp_path, recipes=("copy",), model_store="s3://store/models"), collaborators=FAKES)
    manifest = Manifest.load(result.bundle / "function" / "model")
    assert [(S3Uri("store", "models"), manifest.sha256)] == UPLOADS
    assert not (result.bundle / "function" / "model" / "model.onnx").exists()
    assert "MODEL_URI: s3://store/models/tiny/model.onnx" in (result.bundle / "template.yaml").read_text()
    opened = open_bundle(result.bundle, environ={})
    assert str(opened.settings.model_uri) == "s3://store/models/tiny/model.onnx"
    assert opened.settings.model_dir == result.bundle / "function" / "model"
    assert opened.settings.service == "tiny"


def test_the_template_environment_is_the_settings_the_emulator_uses(tmp_path: Path) -> None:
    import yaml

    from handlers.contract import RuntimeSettings
    from packager.emulator import open_bundle

    result = pack(
        config(tmp_path, recipes=("copy",), tracing=True, package_type=PackageType.IMAGE), collaborators=FAKES
    )
    template = yaml.safe_load((result.bundle / "template.yaml").read_text())
    env = template["Resources"]["TinyFunction"]["Properties"]["Environment"]["Variables"]
    opened = open_bundle(result.bundle, environ={"LAMBDAFIT_CACHE_DIR": "/elsewhere"})
    assert RuntimeSettings.from_env(env).tracing is opened.settings.tracing is True
    assert str(opened.settings.cache_dir) == "/elsewhere"  # this process's environment wins, as documented
    dockerfile = (result.bundle / "function" / "Dockerfile").read_text()
    assert re.search(r'CMD \["handlers\.lambda_function\.lambda_handler"\]', dockerfile)


def test_a_metric_of_the_users_own_is_the_one_reported(tmp_path: Path) -> None:
    metric = tmp_path / "metric.py"
    metric.write_text("def close(outputs, reference):\n    return 1.0\n")
    result = pack(config(tmp_path, recipes=("copy",), metric=f"{metric}:close"), collaborators=FAKES)
    assert json.loads((result.bundle / "report.json").read_text())["quality_kind"] == "close() from metric.py"


def thread_sensitive(drop_at_one_thread: float) -> Collaborators:
    """Measurers whose "shrink" answers worse with one intra-op thread, as int8 LSTM kernels do."""
    seen: list[int | None] = []

    def measure(path: Path, check: QualityCheck, threads: int | None = None) -> Profile:
        seen.append(threads)
        profile = fake_measure(path, check)
        if threads == 1 and path.stem.endswith("shrink"):
            return Profile(profile.size_bytes, 1.0 - drop_at_one_thread, profile.quality_kind, 5.0, 80.0)
        return profile

    measure.seen = seen  # type: ignore[attr-defined]
    return Collaborators(wheels=fake_wheels, measure=measure, time=fake_time, upload=fake_upload, probe=fake_probe)


def test_the_chosen_model_is_measured_again_at_the_threads_it_ships_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("packager.pack.visible_cores", lambda: 2)  # candidates measured at 2 threads
    fakes = thread_sensitive(0.004)
    result = pack(config(tmp_path, recipes=("copy+shrink",)), collaborators=fakes)
    assert result.fit.chosen.recipe == "copy+shrink"
    assert fakes.measure.seen[-1] == 1 and fakes.measure.seen[:-1] == [None, None]  # type: ignore[attr-defined]
    report = json.loads((result.bundle / "report.json").read_text())
    manifest = json.loads((result.bundle / "function/model/manifest.json").read_text())
    assert manifest["runtime"]["intra_op_threads"] == 1
    assert report["shipped_quality"] == {
        "threads": 1, "quality": 0.996, "measured_threads": 2, "measured_quality": 1.0
    }  # fmt: skip
    assert any("at the 1 onnxruntime thread(s) the bundle ships with" in note and "0.996000" in note
               for note in report["notes"])  # fmt: skip
    assert (
        "measured again at the 1 thread(s) its memory size ships with: 0.996000, against 1.000000"
        in (result.bundle / "report.md").read_text()
    )


def test_a_drop_not_allowed_at_the_shipped_threads_refuses_the_pack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("packager.pack.visible_cores", lambda: 2)
    with pytest.raises(NoFitError, match=r"copy\+shrink loses 3.00 pts at the 1 onnxruntime thread\(s\)"):
        pack(config(tmp_path, recipes=("copy+shrink",)), collaborators=thread_sensitive(0.03))
    assert not (tmp_path / "out" / "tiny").exists()


def test_no_second_measurement_when_the_bundle_ships_the_fits_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("packager.pack.visible_cores", lambda: 1)
    fakes = thread_sensitive(0.03)
    result = pack(config(tmp_path, recipes=("copy+shrink",)), collaborators=fakes)
    assert fakes.measure.seen == [None, None]  # type: ignore[attr-defined]
    assert json.loads((result.bundle / "report.json").read_text())["shipped_quality"] is None
