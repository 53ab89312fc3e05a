"""The memory sweep, for real: the digits bundle's handler measured under each size's CPU quota."""

from __future__ import annotations

import json
from pathlib import Path

import yaml


def test_memory_size_comes_from_latency_measured_under_each_sizes_cpu_quota(digits_bundle: Path) -> None:
    report = json.loads((digits_bundle / "report.json").read_text())
    memory = report["memory"]
    assert memory is not None, report["notes"]
    points = {p["memory_mb"]: p for p in memory["points"]}
    assert len(points) >= 6 and min(points) == memory["floor_mb"] and max(points) == 3008
    # The quota bites: the smallest size is held back and runs far slower than a whole vCPU.
    smallest = points[min(points)]
    assert smallest["throttled_ms"] > 0
    assert smallest["mean_ms"] > 2 * points[1769]["mean_ms"]
    chosen = memory["chosen"]["memory_mb"]
    template = yaml.safe_load((digits_bundle / "template.yaml").read_text())
    assert template["Resources"]["DigitsFunction"]["Properties"]["MemorySize"] == chosen == report["cost"]["memory_mb"]
    cheapest = min(p["usd_per_million"] for p in points.values())
    assert points[chosen]["usd_per_million"] <= cheapest * 1.05  # the default objective is cost
    markdown = (digits_bundle / "report.md").read_text()
    assert f"Memory: **{chosen} MB**, chosen for cost" in markdown and "memory.png" in markdown
    assert (digits_bundle / "memory.png").stat().st_size > 10_000
