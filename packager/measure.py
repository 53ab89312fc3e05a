"""Measure a candidate the way the handler runs it: size, quality, latency, cold load, peak memory."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from handlers.manifest import ModelMetrics
from handlers.runtime import open_session
from packager.data import Dataset
from packager.errors import LambdafitError
from packager.quality import Metric

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


def predict(session: Any, data: Dataset) -> list[np.ndarray]:
    """All outputs of the model over the whole dataset, batch by batch."""
    parts: list[list[np.ndarray]] = [session.run(None, batch) for batch in data.batches(EVAL_BATCH)]
    return [np.concatenate([p[i] for p in parts]) for i in range(len(parts[0]))]


def feed(data: Dataset, batch: int) -> dict[str, np.ndarray]:
    rows = {k: np.ascontiguousarray(v[:batch]) for k, v in data.inputs.items()}
    if len(next(iter(rows.values()))) < batch:
        rows = {k: np.resize(v, (batch, *v.shape[1:])) for k, v in rows.items()}
    return rows


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


def latency(session: Any, data: Dataset, batch: int) -> tuple[float, float]:
    rows = feed(data, batch)
    return time_calls(lambda: session.run(None, rows))


def compressed_size(path: Path) -> int:
    with tempfile.TemporaryFile() as handle:
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.write(path, arcname=path.name)
        return handle.tell()


def cold_start(path: Path, data: Dataset) -> dict[str, float]:
    """Load and run the model once in a fresh interpreter (packager.probe) and read its numbers."""
    with tempfile.TemporaryDirectory(prefix="lambdafit-probe-") as tmp:
        feed_path = Path(tmp) / "feed.npz"
        np.savez(feed_path, **feed(data, 1))  # type: ignore[arg-type]
        result = subprocess.run(
            [sys.executable, "-m", "packager.probe", str(path), str(feed_path)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    if result.returncode != 0:
        raise LambdafitError(f"the model failed in a fresh onnxruntime process: {result.stderr.strip()[-300:]}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def measure(path: Path, data: Dataset, reference: list[np.ndarray], metric: Metric) -> Measurement:
    session = open_session(path)
    outputs = predict(session, data)
    p50, p95 = latency(session, data, batch=1)
    p50_8, p95_8 = latency(session, data, batch=8)
    del session
    probe = cold_start(path, data)
    return Measurement(
        size_bytes=path.stat().st_size,
        compressed_bytes=compressed_size(path),
        quality=metric.score(outputs, reference, data.labels),
        quality_kind=metric.kind,
        p50_ms=p50,
        p95_ms=p95,
        p50_batch8_ms=p50_8,
        p95_batch8_ms=p95_8,
        init_ms=probe["session_ms"] + probe["first_run_ms"],
        peak_rss_mb=probe["peak_rss_mb"],
    )
