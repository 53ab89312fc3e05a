"""Budgets, settings and the choice among measured candidates."""

from __future__ import annotations

from pathlib import Path

import pytest

from packager.config import Arch, Budget, Objective, PackageType, PackConfig, resolve
from packager.errors import LambdafitError, NoFitError
from packager.fit import LATENCY_RESOLUTION, Failed, Measured, Rejection, choose, interval
from packager.measure import Measurement


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("zip", 262_144_000),
        ("zip-upload", 52_428_800),
        ("image", 10_737_418_240),
        ("80MB", 80_000_000),
        ("1.5GB", 1_500_000_000),
        ("100MiB", 104_857_600),
        ("512", 512),
    ],
)
def test_budget_parse(text: str, limit: int) -> None:
    assert Budget.parse(text).limit_bytes == limit


@pytest.mark.parametrize("text", ["", "big", "-1MB", "0", "12 parsecs"])
def test_budget_parse_refuses_nonsense(text: str) -> None:
    with pytest.raises(LambdafitError, match="budget"):
        Budget.parse(text)


def test_settings_resolve_argument_then_environment_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMBDAFIT_X", "env")
    assert resolve("arg", "LAMBDAFIT_X", "default") == "arg"
    assert resolve(None, "LAMBDAFIT_X", "default") == "env"
    monkeypatch.delenv("LAMBDAFIT_X")
    assert resolve(None, "LAMBDAFIT_X", "default") == "default"


def test_pack_config_validates_names_and_drop() -> None:
    with pytest.raises(LambdafitError, match="must start with a letter"):
        PackConfig(model="m.onnx", name="bad name")
    with pytest.raises(LambdafitError, match="max-drop"):
        PackConfig(model="m.onnx", name="ok", max_drop=5)
    assert PackConfig(model="m.onnx", name="ok", output_dir=Path("out")).bundle_dir == Path("out/ok")


def m(size: int, quality: float, p50: float, spread: float = 0.1) -> Measurement:
    """A measurement whose p50 interval reaches `spread` of the median either side."""
    low, high = p50 * (1 - spread), p50 * (1 + spread)
    return Measurement(size, size, quality, "accuracy", p50, p50, p50, p50, 10.0, 100.0, low, high, 15)


def cand(name: str, size: int, quality: float, p50: float, fixed: int = 100, spread: float = 0.1) -> Measured:
    return Measured(name, Path(name), m(size, quality, p50, spread), fixed + size, parameters=size)


def test_choose_prefers_fast_then_small_within_drop_and_budget() -> None:
    base = cand("fp32", 400, 0.98, 1.0)
    cands = [
        base,
        cand("small-but-slow", 100, 0.98, 3.0),
        cand("lossy", 90, 0.90, 0.5),
        cand("good", 110, 0.975, 1.02),
    ]
    result = choose(cands, base.measurement, budget_bytes=10_000, max_drop=0.01, objective=Objective.LATENCY)
    assert result.chosen.recipe == "good"
    reasons = {v.candidate.recipe: v.reason for v in result.verdicts}
    assert reasons["small-but-slow"] == "3.00x slower than fp32"
    assert reasons["lossy"].startswith("drop 8.00 pts")


def test_choose_by_size_and_budget() -> None:
    base = cand("fp32", 400, 0.98, 1.0)
    cands = [base, cand("int8", 100, 0.98, 1.05)]
    result = choose(cands, base.measurement, budget_bytes=300, max_drop=0.01, objective=Objective.SIZE)
    assert result.chosen.recipe == "int8"
    assert result.verdicts[0].reason == "over budget by 0.0 MB"


def test_nothing_fits_names_the_closest_candidate_and_keeps_what_was_measured() -> None:
    base = cand("fp32", 400, 0.98, 1.0)
    cands = [base, cand("int8", 100, 0.95, 1.0), Failed("int4", "no MatMul", "no MatMul with constant weights")]
    with pytest.raises(NoFitError, match=r"closest is int8 \(drop 3.00 pts > 1.00 allowed\)") as caught:
        choose(cands, base.measurement, budget_bytes=250, max_drop=0.01, objective=Objective.LATENCY)
    rejection = caught.value.rejection
    assert isinstance(rejection, Rejection) and rejection.baseline is base.measurement
    assert [v.reason for v in rejection.verdicts] == [
        "over budget by 0.0 MB",
        "drop 3.00 pts > 1.00 allowed",
        "failed: no MatMul",
    ]


def test_overlapping_intervals_are_ties_won_by_the_smaller() -> None:
    base = cand("fp32", 400, 0.98, 0.020, spread=0.05)
    fast = cand("fp16", 200, 0.98, 0.0150, spread=0.05)
    cands = [base, fast, cand("int8", 100, 0.98, 0.0158, spread=0.05), cand("int4", 50, 0.98, 0.019, spread=0.05)]
    result = choose(cands, base.measurement, budget_bytes=10_000, max_drop=0.01, objective=Objective.LATENCY)
    assert result.chosen.recipe == "int8"  # its interval overlaps the fastest's; int4's does not


def test_slower_than_fp32_only_when_the_intervals_are_apart() -> None:
    base = cand("fp32", 400, 0.98, 1.0, spread=0.05)
    noisy, slow = cand("noisy", 100, 0.98, 1.3, spread=0.4), cand("slow", 90, 0.98, 1.3, spread=0.05)
    result = choose([base, noisy, slow], base.measurement, budget_bytes=10_000, max_drop=0.01, objective=Objective.SIZE)
    reasons = {v.candidate.recipe: v.reason for v in result.verdicts}
    assert (result.chosen.recipe, reasons["slow"]) == ("noisy", "1.30x slower than fp32")
    allowed = choose(
        [base, noisy, slow], base.measurement, budget_bytes=10_000, max_drop=0.01, objective=Objective.SIZE,
        allow_slower=True,
    )  # fmt: skip
    assert (allowed.chosen.recipe, allowed.verdicts[2].reason) == ("slow", "fits, 1.30x slower than fp32")


def test_an_interval_is_never_narrower_than_the_resolution() -> None:
    """Single figures (no interval) 1% apart: one process cannot tell them apart from another's."""
    base = cand("fp32", 400, 0.98, 1.0, spread=0.0)
    result = choose(
        [base, cand("int8", 100, 0.98, 1.01, spread=0.0)], base.measurement, budget_bytes=10_000, max_drop=0.01,
        objective=Objective.LATENCY,
    )  # fmt: skip
    assert result.chosen.recipe == "int8"
    assert interval(base.measurement) == pytest.approx((1 - LATENCY_RESOLUTION, 1 + LATENCY_RESOLUTION))


def test_a_zip_budget_implies_a_zip_package_for_every_caller() -> None:
    config = PackConfig(model="m.onnx", name="ok", budget=Budget.parse("zip"))
    assert config.package is PackageType.ZIP and config.limit.limit_bytes == 262_144_000
    assert PackConfig(model="m.onnx", name="ok", package_type=PackageType.ZIP).limit.name == "zip"
    assert PackConfig(model="m.onnx", name="ok").package is PackageType.IMAGE
    assert PackConfig(model="m.onnx", name="ok", budget=Budget.parse("zip-upload")).limit.zipped
    with pytest.raises(LambdafitError, match="is a zip limit but --package is image"):
        PackConfig(model="m.onnx", name="ok", budget=Budget.parse("zip"), package_type=PackageType.IMAGE)


def test_strings_and_lists_are_read_as_the_cli_reads_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMBDAFIT_PYTHON", "3.13")
    config = PackConfig(
        model="m.onnx",
        name="ok",
        recipes="slim, slim+int8-static,",
        labels="a,b",
        arch="arm64",
        api="url",  # type: ignore[arg-type]
    )
    assert config.recipes == ("slim", "slim+int8-static") and config.labels == ("a", "b")
    assert (config.arch, config.api.value, config.python) == (Arch.ARM64, "url", "3.13")
    assert PackConfig(model="m.onnx", name="ok", python="3.12").python == "3.12"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"recipes": ("slim+int9",)}, "unknown recipe step int9"),
        ({"recipes": ("slim+prune-0.5",)}, "must be the first step"),
        ({"recipes": ()}, "--recipes is empty"),
        ({"arch": "sparc"}, "--arch 'sparc' is not one of x86_64, arm64"),
        ({"student": "student"}, "--student 'student' must be a factory"),
        ({"model_store": "https://bucket"}, "--model-store"),
        ({"python": "2.7"}, "is not a Lambda runtime"),
        ({"provisioned_concurrency": 0}, "--provisioned-concurrency must be 1 or more"),
    ],
)
def test_pack_config_refuses_what_the_cli_refuses(changes: dict[str, object], message: str) -> None:
    with pytest.raises(LambdafitError, match=message):
        PackConfig(model="m.onnx", name="ok", **changes)  # type: ignore[arg-type]
