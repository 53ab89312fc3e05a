"""SnapStart's rules: when it is on by default, what it refuses, and what it charges."""

from __future__ import annotations

import pytest

from handlers.contract import RuntimeSettings, S3Uri
from packager.config import Arch, PackageType, PackConfig
from packager.snapstart import PAYS_FROM_MS, SnapStartCharges, SnapStartError, decide
from packager.template import AppModel, render_template

BASE = {"python": "3.13", "provisioned_concurrency": None, "ephemeral_mb": 512, "memory_mb": 1769, "cpu_share": 1.0}


def test_on_by_default_only_where_the_cold_load_is_long_enough_at_the_functions_cpu_share() -> None:
    assert decide(None, **BASE, cold_load_ms=PAYS_FROM_MS).enabled
    assert not decide(None, **BASE, cold_load_ms=60).enabled
    half = BASE | {"memory_mb": 884, "cpu_share": 0.5}
    assert decide(None, **half, cold_load_ms=PAYS_FROM_MS / 2).enabled  # twice as slow at half a vCPU
    assert "under the 500 ms" in decide(None, **BASE, cold_load_ms=60).why


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"python": "3.11"}, "python3.11 has no SnapStart"),
        ({"provisioned_concurrency": 2}, "provisioned concurrency cannot be combined"),
        ({"ephemeral_mb": 1024}, "over SnapStart's 512 MB"),
    ],
)
def test_refused_when_asked_and_off_by_default_where_lambda_cannot_apply_it(
    change: dict[str, object], reason: str
) -> None:
    with pytest.raises(SnapStartError, match=reason):
        decide(True, **(BASE | change), cold_load_ms=5000)  # type: ignore[arg-type]
    chosen = decide(None, **(BASE | change), cold_load_ms=5000)  # type: ignore[arg-type]
    assert not chosen.enabled and reason in chosen.why
    assert not decide(False, **BASE, cold_load_ms=5000).enabled


def test_charges_per_version_and_per_restore_scale_with_memory() -> None:
    one = SnapStartCharges.at(1024)
    assert one.cache_usd_per_version_month == pytest.approx(1 * 30 * 24 * 3600 * 0.0000015046, abs=1e-4)
    assert one.restore_usd_per_thousand == pytest.approx(1000 * 0.0001397998, abs=1e-4)
    assert SnapStartCharges.at(2048).cache_usd_per_version_month == pytest.approx(2 * one.cache_usd_per_version_month)


def test_pack_config_refuses_snapstart_with_provisioned_concurrency_or_python311() -> None:
    with pytest.raises(SnapStartError, match="provisioned concurrency"):
        PackConfig(model="m.onnx", name="m", snapstart=True, provisioned_concurrency=1)
    with pytest.raises(SnapStartError, match=r"python3\.11"):
        PackConfig(model="m.onnx", name="m", snapstart=True, python="3.11")
    assert PackConfig(model="m.onnx", name="m", provisioned_concurrency=1).snapstart is None


def app(**changes: object) -> AppModel:
    values: dict[str, object] = {"name": "m", "description": "d", "code_dir": "./function", "python": "3.13",
                                 "arch": Arch.ARM64, "memory_mb": 1024, "package_type": PackageType.ZIP} | changes  # fmt: skip
    return AppModel(**values)  # type: ignore[arg-type]


def test_the_template_publishes_snapshots_of_versions_and_refuses_what_lambda_refuses() -> None:
    function = render_template(app(snapstart=True))["Resources"]["MFunction"]["Properties"]
    assert function["SnapStart"] == {"ApplyOn": "PublishedVersions"} and function["AutoPublishAlias"] == "live"
    assert "SnapStart" not in render_template(app())["Resources"]["MFunction"]["Properties"]
    with pytest.raises(SnapStartError, match="provisioned"):
        app(snapstart=True, provisioned_concurrency=1)
    big = RuntimeSettings(model_uri=S3Uri.parse("s3://models/k/model.onnx"))
    with pytest.raises(SnapStartError, match="512 MB"):
        app(snapstart=True, settings=big, model_bytes=400_000_000)
    assert app(snapstart=True, settings=big, model_bytes=100_000_000).tmp_mb == 512
