"""Latency the fitter can trust: every candidate timed in one worker process, interleaved in rounds.

Timing candidates one after another on a shared machine misleads by up to 40%: whatever else runs
during one candidate's turn is charged to it alone. Here all candidates' sessions live in one fresh
process and take turns (A, B, C, B, C, A, ...): a round times a short block of calls of each, the
block's median is that round's sample, and a candidate's p50 is the median of its round samples with a
distribution-free 95% confidence interval (order statistics of the binomial). Rounds go on until every
interval is narrow or the time budget is spent.

    python -m packager.timing JOB.pkl   ->  one JSON line: Latency dicts in the job's order, and the
                                            process's peak memory (every candidate's session at once)
"""

from __future__ import annotations

import gc
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packager.interrupt import run_child

if TYPE_CHECKING:
    from handlers.manifest import Manifest
    from packager.data import Dataset

CONFIDENCE = 0.95
BATCH = 8
"""The second batch size the table reports (per-row cost for the request limits)."""
MAX_BLOCK_CALLS = 200
WARMUP_SECONDS = 0.5
SPIN_SECONDS = 0.005
"""How long onnxruntime's idle intra-op threads may still spin after a call, competing with the next."""


@dataclass(frozen=True)
class Plan:
    """How long and how often to time. The defaults keep a pack of digits under a few seconds of timing
    and give a 100 M-parameter model at least `min_rounds` samples."""

    min_rounds: int = 15
    max_rounds: int = 80
    seconds_per_candidate: float = 0.6
    block_seconds: float = 0.005
    """A round runs each candidate this long (at least one call): a fast model gets many calls a round."""
    batch8_rounds: int = 5
    """Batch 8 feeds the per-row cost, not the choice: a few rounds are enough."""
    warmup_calls: int = 3
    target_width: float = 0.03
    """Stop early once every interval's half-width is within this fraction of its p50."""


@dataclass(frozen=True)
class Latency:
    """One candidate's timing: p50 with its 95% interval, p95, at batch 1 and at batch 8."""

    p50_ms: float
    low_ms: float
    high_ms: float
    p95_ms: float
    p50_batch8_ms: float
    p95_batch8_ms: float
    rounds: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def median_interval(samples: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Median and a distribution-free confidence interval for it: [x_(k), x_(n+1-k)] with the largest k
    whose binomial tail P(Bin(n, 1/2) <= k - 1) stays within (1 - confidence) / 2. Too few samples for
    that confidence give the whole range."""
    ordered = sorted(samples)
    n = len(ordered)
    if n == 0:
        raise ValueError("no samples")
    middle = n // 2
    median = ordered[middle] if n % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    tail, k, cdf = (1 - confidence) / 2, 0, 0.0
    for j in range(n):
        cdf += math.comb(n, j) / 2**n
        if cdf > tail:
            break
        k = j + 1
    if k == 0:
        return median, ordered[0], ordered[-1]
    return median, ordered[k - 1], ordered[n - k]


def percentile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class _Track:
    """What one candidate has measured so far at one batch size."""

    call: Callable[[], object]
    block_seconds: float
    warm_each_block: bool = True
    rounds: list[float] = field(default_factory=list)
    every_call: list[float] = field(default_factory=list)

    def prepare(self, warmup: int) -> None:
        """Warm-up calls (fewer for a slow model: at most about WARMUP_SECONDS, at least one)."""
        began = time.perf_counter()
        for _ in range(max(1, warmup)):
            start = time.perf_counter()
            self.call()
            last = time.perf_counter() - start
            if time.perf_counter() - began > WARMUP_SECONDS:
                break
        # A fast call is skewed by the previous candidate's thread pool still spinning: one untimed call first.
        self.warm_each_block = last < SPIN_SECONDS

    def block(self) -> None:
        """Calls for about `block_seconds` (at least one): a stall on a busy machine costs one block, not many."""
        if self.warm_each_block:
            self.call()
        times: list[float] = []
        began = time.perf_counter()
        while not times or (time.perf_counter() - began < self.block_seconds and len(times) < MAX_BLOCK_CALLS):
            start = time.perf_counter()
            self.call()
            times.append((time.perf_counter() - start) * 1000)
        self.every_call += times
        self.rounds.append(percentile(times, 0.5))

    def narrow(self, width: float) -> bool:
        median, low, high = median_interval(self.rounds)
        return (high - low) / 2 <= width * median


def interleave(calls: Sequence[tuple[Callable[[], object], Callable[[], object]]], plan: Plan) -> list[Latency]:
    """Time each (batch-1 call, batch-8 call) pair in rounds, rotating the order every round."""
    ones = [_Track(one, plan.block_seconds) for one, _ in calls]
    eights = [_Track(eight, plan.block_seconds) for _, eight in calls]
    for track in ones + eights:
        track.prepare(plan.warmup_calls)
    budget = plan.seconds_per_candidate * len(calls)
    start = time.perf_counter()
    enabled = gc.isenabled()
    gc.disable()
    try:
        for number in range(plan.max_rounds):
            shift = number % len(calls)
            for index in [*range(shift, len(calls)), *range(shift)]:
                ones[index].block()
                if number < plan.batch8_rounds:
                    eights[index].block()
            done = number + 1 >= plan.min_rounds
            if done and (time.perf_counter() - start > budget or all(t.narrow(plan.target_width) for t in ones)):
                break
    finally:
        if enabled:
            gc.enable()
    results = []
    for one, eight in zip(ones, eights, strict=True):
        p50, low, high = median_interval(one.rounds)
        results.append(
            Latency(
                p50_ms=p50,
                low_ms=low,
                high_ms=high,
                p95_ms=percentile(one.every_call, 0.95),
                p50_batch8_ms=median_interval(eight.rounds)[0],
                p95_batch8_ms=percentile(eight.every_call, 0.95),
                rounds=len(one.rounds),
            )
        )
    return results


@dataclass(frozen=True)
class Timings:
    latencies: tuple[Latency, ...]
    """In the order of the paths timed."""
    peak_rss_mb: float
    """The timing process's high-water mark: every candidate's session loaded at once."""


@dataclass(frozen=True)
class TimingJob:
    """What the worker needs: the models, one feed per batch size, and the manifest the handler runs by."""

    paths: tuple[Path, ...]
    manifest: Manifest
    feeds: dict[int, dict[str, Any]]
    plan: Plan

    def write(self, folder: Path) -> None:
        """job.json and feeds.npz: data only (the worker reads the arrays with allow_pickle=False)."""
        import numpy as np

        arrays = {
            f"{rows}/{name}": np.asarray(value) for rows, feed in self.feeds.items() for name, value in feed.items()
        }
        texts = [key for key, array in arrays.items() if array.dtype == object]
        stored = {key: array.astype(str) if key in texts else array for key, array in arrays.items()}
        np.savez(folder / "feeds.npz", **stored)  # type: ignore[arg-type]
        job = {"paths": [str(path) for path in self.paths], "manifest": self.manifest.to_dict(),
               "plan": asdict(self.plan), "texts": texts}  # fmt: skip
        (folder / "job.json").write_text(json.dumps(job), encoding="utf-8")

    @classmethod
    def read(cls, folder: Path) -> TimingJob:
        import numpy as np

        from handlers.manifest import Manifest

        job = json.loads((folder / "job.json").read_text(encoding="utf-8"))
        feeds: dict[int, dict[str, Any]] = {}
        with np.load(folder / "feeds.npz", allow_pickle=False) as archive:
            for key in archive.files:
                rows, name = key.split("/", 1)
                array = archive[key]
                feeds.setdefault(int(rows), {})[name] = array.astype(object) if key in job["texts"] else array
        return cls(tuple(Path(path) for path in job["paths"]), Manifest.from_dict(job["manifest"]), feeds,
                   Plan(**job["plan"]))  # fmt: skip


def time_candidates(paths: Sequence[Path], data: Dataset, manifest: Manifest, plan: Plan | None = None) -> Timings:
    """Interleaved latency of every model in `paths`, measured in one fresh worker process."""
    from packager.errors import LambdafitError

    feeds = {1: data.feed(1), BATCH: data.feed(BATCH if manifest.batched else 1)}
    job = TimingJob(tuple(paths), manifest, feeds, plan or Plan())
    with tempfile.TemporaryDirectory(prefix="lambdafit-timing-") as tmp:
        job.write(Path(tmp))
        result = run_child([sys.executable, "-m", "packager.timing", tmp], timeout=3600)
    if result.returncode != 0:
        raise LambdafitError(f"timing the candidates failed in the worker process: {result.stderr.strip()[-300:]}")
    found = json.loads(result.stdout.strip().splitlines()[-1])
    return Timings(tuple(Latency(**item) for item in found["latencies"]), found["peak_rss_mb"])


def _calls(job: TimingJob) -> list[tuple[Callable[[], object], Callable[[], object]]]:
    from handlers.runtime import ModelRuntime, open_session

    calls: list[tuple[Callable[[], object], Callable[[], object]]] = []
    for path in job.paths:
        runtime = ModelRuntime(manifest=job.manifest, session=open_session(path))
        one = partial(runtime.run, job.feeds[1])
        # A graph with a fixed batch runs the rows in chunks, as the handler does; without a batch axis,
        # eight rows are eight calls.
        eight = partial(runtime.run, job.feeds[BATCH]) if job.manifest.batched else partial(_repeat, one, BATCH)
        calls.append((one, eight))
    return calls


def _repeat(call: Callable[[], object], times: int) -> None:
    for _ in range(times):
        call()


def main(job_folder: str) -> None:
    job = TimingJob.read(Path(job_folder))
    from packager.probe import peak_rss_mb

    results = interleave(_calls(job), job.plan)
    print(json.dumps({"latencies": [latency.to_dict() for latency in results], "peak_rss_mb": peak_rss_mb()}))


if __name__ == "__main__":
    main(sys.argv[1])
