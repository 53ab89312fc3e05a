"""The timing rule's stability: the same model packed twice gets the same choice, and `slim` (the same
graph as fp32) is never told apart from fp32 by timing noise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from packager.config import PackConfig
from packager.pack import pack
from tests.conftest import DIGITS

pytestmark = pytest.mark.slow


def test_packing_the_same_model_twice_chooses_the_same_candidate(tmp_path: Path, digits_files: dict[str, Path]) -> None:
    reports = []
    for attempt in ("first", "second"):
        config = PackConfig(
            model=f"{DIGITS / 'model.py'}:build",
            name="digits",
            output_dir=tmp_path / attempt,
            eval_data=digits_files["eval"],
            calibration_data=digits_files["train"],
            python="3.11",
        )
        pack(config)
        reports.append(json.loads((tmp_path / attempt / "digits" / "report.json").read_text()))
    first, second = reports
    assert first["chosen"] == second["chosen"], (first["why"], second["why"])
    for report in reports:
        rows = {c["recipe"]: c for c in report["candidates"]}
        assert rows["slim"]["verdict"] == "fits", rows["slim"]["verdict"]
        fp32 = rows["fp32"]["metrics"]
        assert fp32["rounds"] >= 15 and fp32["p50_low_ms"] <= fp32["p50_ms"] <= fp32["p50_high_ms"]
        assert report["pack"]["peak_rss_mb"] > 0 and report["measured_on"]["features"]
