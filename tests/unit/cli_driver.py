"""Runs the real `lambdafit` CLI in its own process with fake measuring collaborators, so tests can
look at what it prints on a real terminal (a pty of a given width) and in a pipe, in a second.

    python -m tests.unit.cli_driver pack ...
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from packager.measure import Profile
from packager.pack import Collaborators
from packager.quality_job import QualityCheck
from packager.recipes.base import RecipeContext, Transform
from packager.recipes.registry import STEPS, Step
from packager.timing import Latency, Timings
from packager.wheels import WheelSet

FIGURES = {
    # last step: (model bytes, quality, p50 ms, init ms, peak RSS MB)
    "fp32": (661_912, 0.983333, 0.0671, 95.2, 66.4),
    "copy": (642_340, 0.983333, 0.0573, 73.8, 66.1),
    "shrink": (174_004, 0.980556, 0.0484, 71.1, 65.0),
    "lossy": (99_120, 0.961111, 0.3104, 70.4, 64.8),
}


class Copy(Transform):
    def __init__(self, name: str) -> None:
        self.name = name

    def apply(self, source: Path, target: Path, ctx: RecipeContext) -> None:
        if self.name == "broken":
            raise RuntimeError("MatMulNBits needs a MatMul with a constant weight of at least 2 dimensions")
        shutil.copyfile(source, target)


def _figures(path: Path) -> tuple[int, float, float, float, float]:
    return FIGURES.get(path.stem.split("+")[-1], FIGURES["fp32"])


def fake_measure(path: Path, check: QualityCheck, threads: int | None = None) -> Profile:
    size, quality, _, init, rss = _figures(path)
    time.sleep(0.05)
    return Profile(size, quality, check.metric.kind, init, rss)


def fake_time(paths: Sequence[Path], data: Any, manifest: Any) -> Timings:
    latencies = []
    for path in paths:
        p50 = _figures(path)[2]
        latencies.append(Latency(p50, p50 * 0.97, p50 * 1.03, p50 * 1.3, p50 * 5.2, p50 * 6, 15))
    return Timings(tuple(latencies), 90.0)


def fake_wheels(python: str, arch: Any, extras: tuple[str, ...]) -> WheelSet:
    return WheelSet((), ("numpy==0", "onnxruntime==0"), (2, 17))


def fake_probe(path: Path, data: Any, rows: int) -> dict[str, float]:
    return {"peak_rss_mb": 70.0 + rows}


def fake_upload(store: Any, model: Path, manifest: Any) -> Any:
    raise AssertionError("no uploads here")


FAKES = Collaborators(wheels=fake_wheels, measure=fake_measure, time=fake_time, upload=fake_upload, probe=fake_probe)


def install() -> None:
    for name in ("copy", "shrink", "lossy", "broken"):
        STEPS[name] = Step(name, __name__, "Copy", f"fake {name}", args=(name,))
    Collaborators.default = classmethod(lambda cls, config: FAKES)  # type: ignore[method-assign, assignment, misc]


if __name__ == "__main__":
    install()
    from packager.cli import main

    sys.argv[0] = "lambdafit"
    main()
