"""Measure a candidate the way the handler will run it: size, quality, latency, load time."""

from __future__ import annotations

import io
import time
import zipfile
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from handlers.runtime import session_options
from packager.data import Dataset

EVAL_BATCH = 64
LATENCY_WARMUP = 10
LATENCY_RUNS = 100


class QualityKind(StrEnum):
    ACCURACY = "accuracy"
    AGREEMENT = "top-1 agreement with fp32"
    RELATIVE = "1 - relative error against fp32"


@dataclass(frozen=True)
class Measurement:
    size_bytes: int
    compressed_bytes: int
    quality: float
    quality_kind: QualityKind
    load_ms: float
    p50_ms: float
    p95_ms: float
    p50_batch8_ms: float

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["quality_kind"] = self.quality_kind.value
        return data


def open_session(path: Path) -> tuple[Any, float]:
    import onnxruntime

    start = time.perf_counter()
    session = onnxruntime.InferenceSession(
        str(path), sess_options=session_options(), providers=["CPUExecutionProvider"]
    )
    return session, (time.perf_counter() - start) * 1000


def predict(session: Any, data: Dataset) -> list[np.ndarray]:
    """All outputs of the model over the whole dataset, batch by batch."""
    parts: list[list[np.ndarray]] = []
    for batch in data.batches(EVAL_BATCH):
        parts.append(session.run(None, batch))
    return [np.concatenate([p[i] for p in parts]) for i in range(len(parts[0]))]


def is_classifier(outputs: list[np.ndarray], labels: np.ndarray | None) -> bool:
    first = outputs[0]
    if labels is not None and labels.dtype.kind in "iu" and labels.ndim == 1:
        return first.ndim == 2 and first.shape[1] > 1
    return first.ndim == 2 and first.shape[1] > 1 and first.dtype.kind == "f"


def quality(
    outputs: list[np.ndarray], data: Dataset, reference: list[np.ndarray], classifier: bool
) -> tuple[float, QualityKind]:
    """Accuracy where labels exist; otherwise how closely the candidate follows the fp32 model."""
    first = outputs[0]
    if classifier and data.labels is not None:
        return float(np.mean(first.argmax(axis=1) == data.labels)), QualityKind.ACCURACY
    if classifier:
        return float(np.mean(first.argmax(axis=1) == reference[0].argmax(axis=1))), QualityKind.AGREEMENT
    errors = []
    for got, want in zip(outputs, reference, strict=True):
        got64, want64 = got.astype(np.float64).ravel(), want.astype(np.float64).ravel()
        errors.append(np.linalg.norm(got64 - want64) / max(float(np.linalg.norm(want64)), 1e-12))
    return float(1.0 - max(errors)), QualityKind.RELATIVE


def latency(session: Any, data: Dataset, batch: int, runs: int = LATENCY_RUNS) -> tuple[float, float]:
    """p50 and p95 in milliseconds of `session.run` on real rows, after a warm-up."""
    feed = {k: np.ascontiguousarray(v[:batch]) for k, v in data.inputs.items()}
    if len(next(iter(feed.values()))) < batch:
        feed = {k: np.resize(v, (batch, *v.shape[1:])) for k, v in feed.items()}
    for _ in range(LATENCY_WARMUP):
        session.run(None, feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def compressed_size(path: Path) -> int:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.write(path, arcname=path.name)
    return buffer.tell()


def measure(
    path: Path, data: Dataset, reference: list[np.ndarray] | None, classifier: bool
) -> tuple[Measurement, list[np.ndarray]]:
    session, load_ms = open_session(path)
    outputs = predict(session, data)
    score, kind = quality(outputs, data, reference if reference is not None else outputs, classifier)
    p50, p95 = latency(session, data, batch=1)
    p50_8, _ = latency(session, data, batch=8, runs=LATENCY_RUNS // 2)
    measurement = Measurement(
        size_bytes=path.stat().st_size,
        compressed_bytes=compressed_size(path),
        quality=score,
        quality_kind=kind,
        load_ms=load_ms,
        p50_ms=p50,
        p95_ms=p95,
        p50_batch8_ms=p50_8,
    )
    return measurement, outputs
