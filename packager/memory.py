"""MemorySize chosen by measurement, as AWS Lambda Power Tuning does it, without an AWS account.

The bundle's real handler answers its sample /predict event in a fresh process that runs under a CPU
quota (packager.quota) set, size after size, to the share Lambda gives that memory: 1 vCPU per 1,769 MB.
Requests run back to back, so the quota bites as it does on a busy function; the mean duration per
request (billed per ms, rounded up per request) gives the cost per million at each size, and the
objective picks one:

- cost: the cheapest; sizes within 5% of it count as equally cheap, and the fastest of those wins;
- latency: the fastest; sizes within 5% of it count as equally fast, and the cheapest of those wins;
- balanced: Power Tuning's balanced strategy, the smallest sum of cost and duration, each divided by
  its largest value in the sweep (weight 0.5).

The peak RSS of a fresh process that ran the model, with 30% headroom, is the floor: no size below it
is measured. Sizes above 3,008 MB are not measured: Lambda shows them more than two cores, which a
2-core machine cannot stand in for.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from handlers.contract import MANIFEST_FILE, WARMUP_FILE
from handlers.manifest import Manifest
from packager.config import Arch, MemoryObjective
from packager.cost import (
    HEADROOM,
    MAX_MEMORY_MB,
    MB_PER_VCPU,
    PRICE_PER_GB_SECOND,
    PRICE_PER_MILLION_REQUESTS,
    CostEstimate,
)
from packager.errors import LambdafitError
from packager.quota import CgroupQuota

GRID_MB = (128, 256, 512, 768, 1024, 1536, 1769, 2048, 2560, 3008)
"""Power Tuning's usual sizes, plus one vCPU exactly (1,769 MB) and a few between."""
MEASURABLE_MB = 3008
MIN_MEMORY_MB = 128
TIE = 0.05
CONTENDED = 0.8
BALANCED_WEIGHT = 0.5
SECONDS_PER_SIZE = 0.6
MIN_CALLS = 5


def thread_choices(memory_mb: int) -> tuple[int | None, ...]:
    """onnxruntime intra-op threads worth measuring at a size: one below one vCPU, where a second thread
    only spins against the quota (measured here: the digits CNN and the transformer ran 2-2.4x slower with
    two threads than with one at 0.29 and 0.43 vCPU); from one vCPU, one or a thread per visible core (None)."""
    return (1,) if memory_mb < MB_PER_VCPU else (1, None)


def intra_op_threads(memory_mb: int) -> int | None:
    """The threads for a size that was not measured: one below one vCPU, a thread per visible core above."""
    return thread_choices(memory_mb)[-1]


def floor_mb(peak_rss_mb: float) -> int:
    """Peak RSS with 30% headroom, in 64 MB steps, at least Lambda's 128 MB."""
    return int(min(MAX_MEMORY_MB, max(MIN_MEMORY_MB, math.ceil(peak_rss_mb * HEADROOM / 64) * 64)))


def sweep_sizes(floor: int) -> tuple[int, ...]:
    """The floor and every grid size above it that this machine can stand in for."""
    return tuple(sorted({floor, *(size for size in GRID_MB if floor < size <= MEASURABLE_MB)}))


def vcpus(memory_mb: int) -> float:
    return min(6.0, memory_mb / MB_PER_VCPU)


@dataclass(frozen=True)
class SweepPoint:
    memory_mb: int
    vcpus: float
    mean_ms: float
    p50_ms: float
    p95_ms: float
    billed_ms: float
    """Mean of each request's duration rounded up to the next ms, as Lambda bills."""
    calls: int
    throttled_ms: float
    """Time the quota held the process back while this size was measured."""
    usd_per_million: float
    cpu_vcpus: float = 0.0
    """CPU the process used per second of wall time: well under its share when the machine was busy."""
    threads: int | None = None
    """onnxruntime intra-op threads it ran with (the faster of those measured); None: one per visible core."""

    @property
    def contended(self) -> bool:
        """The process got less than 80% of the CPU its quota allowed (up to one core): other work on the
        machine, not the quota, set its speed, so Lambda at this size would be faster."""
        return self.cpu_vcpus < CONTENDED * min(self.vcpus, 1.0)

    @classmethod
    def measured(cls, arch: Arch, raw: dict[str, Any]) -> SweepPoint:
        memory = int(raw["memory_mb"])
        compute = 1_000_000 * (memory / 1024) * (raw["billed_ms"] / 1000) * PRICE_PER_GB_SECOND[arch]
        return cls(
            memory_mb=memory,
            vcpus=round(vcpus(memory), 3),
            mean_ms=raw["mean_ms"],
            p50_ms=raw["p50_ms"],
            p95_ms=raw["p95_ms"],
            billed_ms=raw["billed_ms"],
            calls=raw["calls"],
            throttled_ms=raw["throttled_ms"],
            usd_per_million=round(compute + PRICE_PER_MILLION_REQUESTS, 4),
            cpu_vcpus=round(float(raw.get("cpu_vcpus", 0.0)), 3),
            threads=raw.get("threads", intra_op_threads(memory)),
        )


@dataclass(frozen=True)
class MemoryChoice:
    objective: MemoryObjective
    floor_mb: int
    points: tuple[SweepPoint, ...]
    chosen: SweepPoint
    why: str
    method: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def estimate(self) -> CostEstimate:
        p = self.chosen
        return CostEstimate(
            memory_mb=p.memory_mb,
            duration_ms=p.mean_ms,
            usd_per_million=p.usd_per_million,
            assumptions=f"{self.objective.value} objective over a sweep measured with {self.method}",
        )

    def table(self) -> list[str]:
        """Markdown rows: one per measured size."""
        lines = [
            "| memory MB | vCPU | threads | CPU used | mean ms | p50 ms | p95 ms | billed ms | $ per million | |",
            "|" + "---|" * 10,
        ]
        for p in self.points:
            mark = "CHOSEN" if p is self.chosen else ""
            busy = " (busy)" if p.contended else ""
            lines.append(
                f"| {p.memory_mb} | {p.vcpus:.2f} | {p.threads or 'per core'} | {p.cpu_vcpus:.2f}{busy} | {p.mean_ms:.2f} | {p.p50_ms:.2f} | "
                f"{p.p95_ms:.2f} | {p.billed_ms:.2f} | {p.usd_per_million:.4f} | {mark} |"
            )
        return lines

    @property
    def contention_note(self) -> str | None:
        busy = [p.memory_mb for p in self.points if p.contended]
        if not busy:
            return None
        return (
            f"the machine was busy while the memory sweep ran: at {', '.join(map(str, busy))} MB the handler got "
            "less CPU than the size's share, so those sizes measured slower than Lambda would run them; pack "
            "again on a quiet machine for a trustworthy MemorySize"
        )


def choose(points: tuple[SweepPoint, ...], objective: MemoryObjective, floor: int, method: str) -> MemoryChoice:
    if not points:
        raise LambdafitError("the memory sweep measured no size")
    if objective is MemoryObjective.COST:
        best = min(p.usd_per_million for p in points)
        tied = [p for p in points if p.usd_per_million <= best * (1 + TIE)]
        chosen = min(tied, key=lambda p: (p.mean_ms, p.memory_mb))
        why = (
            f"the cheapest measured size costs ${best:.4f} per million; {len(tied)} size(s) within 5% of it, and "
            f"{chosen.memory_mb} MB is the fastest of those ({chosen.mean_ms:.2f} ms mean)"
        )
    elif objective is MemoryObjective.LATENCY:
        best = min(p.mean_ms for p in points)
        tied = [p for p in points if p.mean_ms <= best * (1 + TIE)]
        chosen = min(tied, key=lambda p: (p.usd_per_million, p.memory_mb))
        why = (
            f"the fastest measured size answers in {best:.2f} ms mean; {len(tied)} size(s) within 5% of it, and "
            f"{chosen.memory_mb} MB is the cheapest of those (${chosen.usd_per_million:.4f} per million)"
        )
    else:
        top_cost = max(p.usd_per_million for p in points)
        top_ms = max(p.mean_ms for p in points)

        def score(p: SweepPoint) -> float:
            return BALANCED_WEIGHT * p.usd_per_million / top_cost + (1 - BALANCED_WEIGHT) * p.mean_ms / top_ms

        chosen = min(points, key=lambda p: (score(p), p.memory_mb))
        why = (
            f"{chosen.memory_mb} MB has the smallest balanced score ({score(chosen):.3f}: half its cost over the "
            f"sweep's highest, half its duration over the sweep's longest)"
        )
    return MemoryChoice(objective, floor, points, chosen, why, method)


def stage_model_dir(
    folder: Path, model: Path, manifest: Manifest, warmup: dict[str, Any], files: dict[str, Path]
) -> Path:
    """A model folder the handler can load (manifest, model, tokenizer or other files, sample request)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in {manifest.model_file: model, **files}.items():
        if not (folder / name).exists():
            os.symlink(source.resolve(), folder / name)
    (folder / MANIFEST_FILE).write_text(manifest.dumps(), encoding="utf-8")
    (folder / WARMUP_FILE).write_text(json.dumps(warmup), encoding="utf-8")
    return folder


def single_thread_copy(model_dir: Path) -> Path:
    """The same model folder with a manifest that asks for one intra-op thread, beside the original."""
    target = model_dir.with_name(model_dir.name + "-1thread")
    target.mkdir(exist_ok=True)
    manifest = Manifest.load(model_dir)
    for source in model_dir.iterdir():
        if source.name != MANIFEST_FILE and not (target / source.name).exists():
            os.symlink(source.resolve(), target / source.name)
    single = replace(manifest, runtime=replace(manifest.runtime, intra_op_threads=1))
    (target / MANIFEST_FILE).write_text(single.dumps(), encoding="utf-8")
    return target


def sweep(model_dir: Path, sizes: tuple[int, ...], objective: MemoryObjective, arch: Arch, floor: int) -> MemoryChoice:
    """Run packager.memprobe in a fresh process inside a new cgroup, and choose from what it measured.
    Each size runs with the threads the bundle will use at that size (`intra_op_threads`)."""
    single = single_thread_copy(model_dir)
    quota = CgroupQuota.create(f"lambdafit-sweep-{os.getpid()}")
    environ = os.environ | {"POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}
    try:
        command = [sys.executable, "-m", "packager.memprobe", str(model_dir), str(single), str(quota.path),
                   str(int(quota.v2))]  # fmt: skip
        command += [",".join(map(str, sizes)), str(SECONDS_PER_SIZE)]
        result = subprocess.run(command, capture_output=True, text=True, env=environ, timeout=1800, check=False)
    finally:
        quota.remove()
    if result.returncode != 0:
        raise LambdafitError(f"the memory sweep failed: {result.stderr.strip()[-400:]}")
    raw = json.loads(result.stdout.strip().splitlines()[-1])
    points = tuple(SweepPoint.measured(arch, point) for point in raw["points"])
    method = (
        f"the handler answering its sample request back to back in a fresh process under a cgroup CPU quota of "
        f"memory/1,769 vCPU per {raw['period_ms']:.0f} ms period (what `docker run --cpus` sets), "
        f"{raw['cores']} cores visible, one onnxruntime thread below 1,769 MB and the faster of one or one per core "
        f"from there; {arch.value} us-east-1 prices"
    )
    return choose(points, objective, floor, method)
