"""Measure a candidate the way the handler runs it: size, quality, cold load, peak memory (`measure`,
one fresh worker process per candidate), and latency (`packager.timing`, all candidates interleaved in
one worker process)."""

from __future__ import annotations

import json
import signal
import sys
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from handlers.manifest import Manifest, ModelMetrics
from handlers.runtime import ModelRuntime, open_session
from handlers.tensors import Output
from packager.data import Dataset
from packager.errors import LambdafitError
from packager.interrupt import run_child
from packager.quality import Outputs
from packager.quality_job import QualityCheck
from packager.timing import Latency

EVAL_BATCH = 32


@dataclass(frozen=True)
class Profile:
    """What one candidate measured on its own, in a fresh process: everything but its latency."""

    size_bytes: int
    quality: float
    quality_kind: str
    init_ms: float
    """Cold start of the model in a fresh process: onnxruntime session creation plus the first run."""
    peak_rss_mb: float
    """Peak resident memory of that process: Python, numpy, onnxruntime, the session and one batch."""
    process_peak_rss_mb: float = 0.0
    """The measuring process's own peak, its quality run over the evaluation data included."""


@dataclass(frozen=True)
class Measurement:
    size_bytes: int
    compressed_bytes: int | None
    """Zipped model bytes, measured only when the budget counts zipped bytes."""
    quality: float
    quality_kind: str
    p50_ms: float
    p95_ms: float
    p50_batch8_ms: float
    p95_batch8_ms: float
    init_ms: float
    """Cold start of the model in a fresh process: onnxruntime session creation plus the first run."""
    peak_rss_mb: float
    """Peak resident memory of that process: Python, numpy, onnxruntime, the session and one batch."""
    p50_low_ms: float | None = None
    p50_high_ms: float | None = None
    """The 95% confidence interval of p50 at batch 1 (None: a single figure, no interval)."""
    rounds: int = 0
    """Interleaved timing rounds the interval rests on."""

    @classmethod
    def of(cls, profile: Profile, latency: Latency, compressed_bytes: int | None = None) -> Measurement:
        return cls(
            size_bytes=profile.size_bytes,
            compressed_bytes=compressed_bytes,
            quality=profile.quality,
            quality_kind=profile.quality_kind,
            p50_ms=latency.p50_ms,
            p95_ms=latency.p95_ms,
            p50_batch8_ms=latency.p50_batch8_ms,
            p95_batch8_ms=latency.p95_batch8_ms,
            init_ms=profile.init_ms,
            peak_rss_mb=profile.peak_rss_mb,
            p50_low_ms=latency.low_ms,
            p50_high_ms=latency.high_ms,
            rounds=latency.rounds,
        )

    @property
    def p50_interval(self) -> tuple[float, float]:
        low = self.p50_ms if self.p50_low_ms is None else self.p50_low_ms
        high = self.p50_ms if self.p50_high_ms is None else self.p50_high_ms
        return low, high

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_manifest(self, baseline: Measurement) -> ModelMetrics:
        """What the shipped model measured, for the bundle's manifest."""
        return ModelMetrics(
            quality=self.quality,
            quality_kind=self.quality_kind,
            size_bytes=self.size_bytes,
            p50_ms=self.p50_ms,
            p50_batch8_ms=self.p50_batch8_ms,
            peak_rss_mb=self.peak_rss_mb,
            init_ms=self.init_ms,
            baseline_quality=baseline.quality,
            baseline_p50_ms=baseline.p50_ms,
            baseline_size_bytes=baseline.size_bytes,
        )


def candidate_runtime(path: Path, manifest: Manifest) -> ModelRuntime:
    """The model as the handler runs it: its session settings, and its fixed-batch chunking."""
    return ModelRuntime(manifest=manifest, session=open_session(path))


def predict(runtime: ModelRuntime, data: Dataset) -> Outputs:
    """All outputs of the model over the whole dataset, batch by batch, joined along their batch axes
    (an output without a batch axis keeps the first batch's value)."""
    parts = [runtime.run(batch) for batch in data.batches(EVAL_BATCH)]
    return {spec.name: _join([part[spec.name] for part in parts], spec.batch_axis) for spec in runtime.manifest.outputs}


def _join(parts: list[Output], axis: int | None) -> Output:
    if isinstance(parts[0], list):
        return [row for part in parts for row in part]  # type: ignore[union-attr]
    if axis is None or len(parts) == 1:
        return parts[0]
    return np.concatenate(parts, axis=axis)  # type: ignore[arg-type]


def compressed_size(path: Path) -> int:
    with tempfile.TemporaryFile() as handle:
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.write(path, arcname=path.name)
        return handle.tell()


def cold_start(
    path: Path, data: Dataset, rows: int, quality: Path | None = None, threads: int | None = None
) -> dict[str, float]:
    """Load and run the model once in a fresh interpreter (packager.probe) and read its numbers; with a
    saved QualityCheck, its quality too; at `threads` intra-op threads (None: one per visible core)."""
    with tempfile.TemporaryDirectory(prefix="lambdafit-probe-") as tmp:
        feed_path = Path(tmp) / "feed.npz"
        feed = {k: v.astype(str) if v.dtype == object else v for k, v in data.feed(rows).items()}
        np.savez(feed_path, **feed)  # type: ignore[arg-type]
        command = [sys.executable, "-m", "packager.probe", str(path), str(feed_path)]
        command += [*([str(quality)] if quality else []), *(["--threads", str(threads)] if threads else [])]
        result = run_child(command, timeout=3600)
    if result.returncode < 0:
        name = signal.Signals(-result.returncode).name if -result.returncode in signal.valid_signals() else "a signal"
        raise LambdafitError(f"onnxruntime crashed ({name}) loading or running this model in a fresh process")
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        raise LambdafitError(f"the model failed in a fresh onnxruntime process: {lines[-1] if lines else 'no output'}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def measure(path: Path, check: QualityCheck, threads: int | None = None) -> Profile:
    """Size, quality, cold start and peak memory of one candidate, from one fresh worker process, at
    `threads` intra-op threads (None: one per visible core)."""
    probe = cold_start(
        path, check.data, check.manifest.fixed_batch or 1, quality=check.saved(path.parent), threads=threads
    )
    return Profile(
        size_bytes=path.stat().st_size,
        quality=probe["quality"],
        quality_kind=check.metric.kind,
        init_ms=probe["session_ms"] + probe["first_run_ms"],
        peak_rss_mb=probe["peak_rss_mb"],
        process_peak_rss_mb=probe["process_peak_rss_mb"],
    )
