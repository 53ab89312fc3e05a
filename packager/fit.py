"""Choose the candidate to ship: inside the budget, within the allowed drop, best by the objective."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packager.config import Objective
from packager.errors import NoFitError
from packager.measure import Measurement

LATENCY_RESOLUTION = 0.02
"""The narrowest a p50 interval is taken to be: +-2% of the median. An interval from one process's
interleaved rounds says nothing of the few percent another process (memory layout, thread placement)
shifts every candidate by, and a choice must not flip between two packs of the same model on that."""


def interval(m: Measurement) -> tuple[float, float]:
    """The p50's 95% confidence interval, at least LATENCY_RESOLUTION wide on either side."""
    low, high = m.p50_interval
    return min(low, m.p50_ms * (1 - LATENCY_RESOLUTION)), max(high, m.p50_ms * (1 + LATENCY_RESOLUTION))


def slower(m: Measurement, than: Measurement) -> bool:
    """Slower beyond doubt: the whole interval lies above the other's."""
    return interval(m)[0] > interval(than)[1]


def tied(a: Measurement, b: Measurement) -> bool:
    """Overlapping intervals: the timings cannot tell the two apart."""
    return not slower(a, b) and not slower(b, a)


@dataclass(frozen=True)
class Measured:
    """A recipe that produced a model, and what that model measured."""

    recipe: str
    path: Path
    measurement: Measurement
    package_bytes: int
    parameters: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "package_bytes": self.package_bytes,
            "parameters": self.parameters,
            "error": None,
            "metrics": self.measurement.to_dict(),
        }


@dataclass(frozen=True)
class Failed:
    """A recipe that could not produce or run a model: a short reason for the table, the rest for the report."""

    recipe: str
    error: str
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "package_bytes": None,
            "parameters": None,
            "error": self.error,
            "detail": self.detail or self.error,
            "metrics": None,
        }


Candidate = Measured | Failed


@dataclass(frozen=True)
class Verdict:
    candidate: Candidate
    eligible: bool
    reason: str
    drop: float | None


@dataclass(frozen=True)
class Judged:
    """Every candidate with its verdict, against the fp32 baseline."""

    verdicts: tuple[Verdict, ...]
    baseline: Measurement


@dataclass(frozen=True)
class FitResult(Judged):
    chosen: Measured
    why: str


@dataclass(frozen=True)
class Rejection(Judged):
    """Nothing fits: the closest candidate and by how much it missed."""

    message: str


def judge(
    candidate: Candidate, baseline: Measurement, budget_bytes: int, max_drop: float, allow_slower: bool
) -> Verdict:
    if isinstance(candidate, Failed):
        return Verdict(candidate, False, f"failed: {candidate.error}", None)
    m = candidate.measurement
    drop = baseline.quality - m.quality
    if candidate.package_bytes > budget_bytes:
        over = (candidate.package_bytes - budget_bytes) / 1e6
        return Verdict(candidate, False, f"over budget by {over:.1f} MB", drop)
    if drop > max_drop + 1e-9:
        return Verdict(candidate, False, f"drop {100 * drop:.2f} pts > {100 * max_drop:.2f} allowed", drop)
    if slower(m, baseline):
        why = f"{m.p50_ms / baseline.p50_ms:.2f}x slower than fp32"
        if not allow_slower:
            return Verdict(candidate, False, why, drop)
        return Verdict(candidate, True, f"fits, {why}", drop)
    return Verdict(candidate, True, "fits", drop)


def _key(candidate: Measured, objective: Objective, fastest: Measurement) -> tuple[float, ...]:
    m = candidate.measurement
    if objective is Objective.SIZE:
        return (m.size_bytes, m.p50_ms)
    if objective is Objective.QUALITY:
        return (-round(m.quality, 6), m.size_bytes)
    return (0.0 if tied(m, fastest) else m.p50_ms, m.size_bytes)


def choose(
    candidates: list[Candidate],
    baseline: Measurement,
    *,
    budget_bytes: int,
    max_drop: float,
    objective: Objective,
    allow_slower: bool = False,
) -> FitResult:
    """The best eligible candidate, or NoFitError carrying a `Rejection`."""
    verdicts = tuple(judge(c, baseline, budget_bytes, max_drop, allow_slower) for c in candidates)
    eligible = [v for v in verdicts if v.eligible and isinstance(v.candidate, Measured)]
    if not eligible:
        message = _explain_miss(verdicts, budget_bytes, max_drop)
        raise NoFitError(message, Rejection(verdicts=verdicts, baseline=baseline, message=message))
    measured = [v.candidate for v in eligible if isinstance(v.candidate, Measured)]
    fastest = min((c.measurement for c in measured), key=lambda m: m.p50_ms)
    winner = min(measured, key=lambda c: _key(c, objective, fastest))
    drop = next(v.drop for v in eligible if v.candidate is winner) or 0.0
    m = winner.measurement
    why = (
        f"best {objective.value} among {len(eligible)} eligible of {len(verdicts)}: "
        f"{baseline.size_bytes / max(m.size_bytes, 1):.2f}x smaller than fp32, "
        f"quality drop {100 * drop:.2f} pts, p50 {m.p50_ms / baseline.p50_ms:.2f}x fp32"
    )
    return FitResult(verdicts=verdicts, baseline=baseline, chosen=winner, why=why)


def _explain_miss(verdicts: tuple[Verdict, ...], budget_bytes: int, max_drop: float) -> str:
    measured = [(v, v.candidate) for v in verdicts if isinstance(v.candidate, Measured)]
    if not measured:
        return "every candidate failed: " + "; ".join(f"{v.candidate.recipe}: {v.reason}" for v in verdicts)

    def shortfall(pair: tuple[Verdict, Measured]) -> float:
        verdict, candidate = pair
        over_size = max(0.0, (candidate.package_bytes - budget_bytes) / budget_bytes)
        over_drop = max(0.0, (verdict.drop or 0.0) - max_drop)
        return over_size + over_drop

    closest, _ = min(measured, key=shortfall)
    return (
        f"no candidate fits within budget {budget_bytes / 1e6:.1f} MB and max drop {100 * max_drop:.2f} pts; "
        f"closest is {closest.candidate.recipe} ({closest.reason}). Try --max-drop, a larger --budget "
        "(--package image allows 10 GB), calibration data closer to production (--calibration), "
        "or other --recipes"
    )
