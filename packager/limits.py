"""What one request may ask of the function, derived from what was measured on the chosen model.

The function has MemorySize MB and the timeout, and Lambda gives it MemorySize/1,769 of a vCPU. The
memory a row costs comes from running the model in fresh processes at 1 and at R rows; the time a row
costs from the p50 latencies at batch 1 and 8. Rows per request are bounded so that the largest request
that passes validation stays within 80% of the memory, half the timeout at Lambda's CPU share, and
Lambda's 6 MB for the request and the response.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from handlers.manifest import ImagePreprocessing, Manifest, RequestLimits, TextPreprocessing
from packager.cost import MB_PER_VCPU

MEMORY_SHARE = 0.8
TIME_SHARE = 0.5
PAYLOAD_BYTES = 6 * 1024 * 1024
JSON_BYTES_PER_NUMBER = 12
"""A float32 printed by json: ~10 digits, a sign, a comma."""
CHARS_PER_TOKEN = 32
MAX_ROWS = 100_000


@dataclass(frozen=True)
class RowCosts:
    base_mb: float
    """Peak RSS of a fresh process that loaded the model and ran one row."""
    per_row_mb: float
    base_ms: float
    per_row_ms: float


def per_row_elements(manifest: Manifest, outputs: bool) -> int:
    """Numbers per row in the inputs or outputs, where their shapes are known (symbolic axes as 1)."""
    total = 0
    for spec in manifest.outputs if outputs else manifest.inputs:
        if spec.batch_axis is None:
            continue
        size = 1
        for axis, dim in enumerate(spec.shape):
            if axis != spec.batch_axis and isinstance(dim, int):
                size *= dim
        total += size if spec.is_tensor else 8
    return max(total, 1)


def derive(manifest: Manifest, costs: RowCosts, memory_mb: int, timeout_s: float) -> RequestLimits:
    share = min(1.0, memory_mb / MB_PER_VCPU)
    free_mb = MEMORY_SHARE * memory_mb - costs.base_mb
    bounds: dict[str, float] = {}
    if costs.per_row_mb > 0:
        bounds["memory"] = free_mb / costs.per_row_mb
    if costs.per_row_ms > 0:
        bounds["time"] = (TIME_SHARE * timeout_s * 1000 * share - costs.base_ms) / costs.per_row_ms
    bounds["response"] = PAYLOAD_BYTES / (JSON_BYTES_PER_NUMBER * per_row_elements(manifest, outputs=True))
    bounds["request"] = PAYLOAD_BYTES / (2 * per_row_elements(manifest, outputs=False))
    which = min(bounds, key=lambda k: bounds[k])
    rows = max(1, min(MAX_ROWS, math.floor(bounds[which])))
    if manifest.fixed_batch:
        rows = max(manifest.fixed_batch, rows)
    basis = {
        "memory": f"{costs.per_row_mb:.2f} MB per row in {memory_mb} MB",
        "time": f"{costs.per_row_ms / share:.2f} ms per row at {share:.2f} vCPU in half the {timeout_s:g} s timeout",
        "response": "a 6 MB response",
        "request": "a 6 MB request",
    }[which]
    limits = RequestLimits(max_rows=rows if manifest.batched else None, basis=basis)
    if isinstance(manifest.preprocessing, TextPreprocessing):
        limits = RequestLimits(
            max_rows=limits.max_rows, basis=basis, max_text_chars=manifest.preprocessing.max_length * CHARS_PER_TOKEN
        )
    if isinstance(manifest.preprocessing, ImagePreprocessing):
        pixels = int(max(free_mb, 16) * 1e6 / 16)  # decoding holds ~4 bytes a pixel, and resizing copies it
        limits = RequestLimits(max_rows=limits.max_rows, basis=basis, max_pixels=min(RequestLimits.max_pixels, pixels))
    return limits
