"""Measure a candidate the way the handler runs it: size, quality, latency, cold load, peak memory."""

from __future__ import annotations

import json
import sys
import tempfile
import time
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
from packager.quality import Metric, Outputs

EVAL_BATCH = 32
LATENCY_WARMUP = 3
LATENCY_MIN_RUNS = 5
LATENCY_MAX_RUNS = 100
LATENCY_SECONDS = 2.0
"""Per batch size: up to 100 timed runs, fewer when a run is slow, so big models stay measurable."""


@dataclass(frozen=True)
class Measurement:
    size_bytes: int
    compressed_bytes: int
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


def time_calls(call: Any, *, seconds: float = LATENCY_SECONDS) -> tuple[float, float]:
    """p50 and p95 in milliseconds of `call()`, after a warm-up."""
    for _ in range(LATENCY_WARMUP):
        call()
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(times) < LATENCY_MAX_RUNS and (len(times) < LATENCY_MIN_RUNS or time.perf_counter() < deadline):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def latency(runtime: ModelRuntime, data: Dataset, rows: int) -> tuple[float, float]:
    """`rows` rows through the runtime: one call, or one call per `rows` when no input has a batch axis."""
    if not runtime.manifest.batched:
        feed = data.feed(1)
        return time_calls(lambda: [runtime.run(feed) for _ in range(rows)])
    feed = data.feed(rows)
    return time_calls(lambda: runtime.run(feed))


def compressed_size(path: Path) -> int:
    with tempfile.TemporaryFile() as handle:
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.write(path, arcname=path.name)
        return handle.tell()


def cold_start(path: Path, data: Dataset, rows: int) -> dict[str, float]:
    """Load and run the model once in a fresh interpreter (packager.probe) and read its numbers."""
    with tempfile.TemporaryDirectory(prefix="lambdafit-probe-") as tmp:
        feed_path = Path(tmp) / "feed.npz"
        feed = {k: v.astype(str) if v.dtype == object else v for k, v in data.feed(rows).items()}
        np.savez(feed_path, **feed)  # type: ignore[arg-type]
        result = run_child([sys.executable, "-m", "packager.probe", str(path), str(feed_path)], timeout=600)
    if result.returncode != 0:
        raise LambdafitError(f"the model failed in a fresh onnxruntime process: {result.stderr.strip()[-300:]}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def measure(path: Path, data: Dataset, reference: Outputs, metric: Metric, manifest: Manifest) -> Measurement:
    runtime = candidate_runtime(path, manifest)
    outputs = predict(runtime, data)
    p50, p95 = latency(runtime, data, rows=1)
    p50_8, p95_8 = latency(runtime, data, rows=8)
    del runtime
    probe = cold_start(path, data, manifest.fixed_batch or 1)
    return Measurement(
        size_bytes=path.stat().st_size,
        compressed_bytes=compressed_size(path),
        quality=metric.score(outputs, reference),
        quality_kind=metric.kind,
        p50_ms=p50,
        p95_ms=p95,
        p50_batch8_ms=p50_8,
        p95_batch8_ms=p95_8,
        init_ms=probe["session_ms"] + probe["first_run_ms"],
        peak_rss_mb=probe["peak_rss_mb"],
    )
