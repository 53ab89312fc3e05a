"""`lambdafit batch BUNDLE INPUT OUTPUT`: the bundle's handler over a JSONL or CSV file, on this machine.

The rows go through handlers.batch, the code the bundle's batch function runs for Step Functions,
SQS and asynchronous events, so the lines written here are the lines the fleet writes. The file is
streamed (memory stays flat whatever its length) and the output replaces OUTPUT only when complete.

Also here: how many rows a Distributed Map hands the function at once (`map_batch_rows`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from handlers.batch import RowFormat, Scorer, dumps_line, read_rows
from handlers.manifest import Manifest
from packager.errors import LambdafitError
from packager.limits import JSON_BYTES_PER_NUMBER, per_row_elements

STATE_PAYLOAD_BYTES = 256 * 1024
"""Step Functions' limit on a state's input and output: one batch of rows in, its lines out."""
MAX_MAP_BATCH_ROWS = 64
LINE_OVERHEAD_BYTES = 400
"""A line's keys, model name, version and top-5 predictions, besides its output numbers."""


def map_batch_rows(manifest: Manifest, per_row_ms: float, timeout_s: float) -> int:
    """Rows per ItemBatcher batch: the lines of a batch fit in half of Step Functions' 256 KB, and the
    rows take at most a quarter of the function's timeout at the measured time per row."""
    line_bytes = JSON_BYTES_PER_NUMBER * per_row_elements(manifest, outputs=True) + LINE_OVERHEAD_BYTES
    by_payload = STATE_PAYLOAD_BYTES // 2 // line_bytes
    by_time = int(timeout_s * 1000 / 4 / per_row_ms) if per_row_ms > 0 else MAX_MAP_BATCH_ROWS
    return max(1, min(MAX_MAP_BATCH_ROWS, by_payload, by_time))


@dataclass(frozen=True)
class BatchRun:
    rows: int
    errors: int
    """Rows answered with a 4xx or 5xx line."""
    seconds: float
    peak_rss_mb: float
    output: Path

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def count_rows(source: Path) -> int:
    """Rows in the file, for the progress bar: non-empty lines, less a CSV header."""
    with source.open("rb") as handle:
        lines = sum(1 for line in handle if line.strip())
    return max(0, lines - 1) if RowFormat.of(source) is RowFormat.CSV else lines


def run_batch(
    bundle: Path, source: Path, target: Path, progress: Callable[[int], None] | None = None, every: int = 1000
) -> BatchRun:
    """Every row of `source` through the bundle's handler, one line each into `target`."""
    from handlers.app import Endpoint, load
    from handlers.metrics import RequestMetrics
    from packager.emulator import open_bundle
    from packager.probe import peak_rss_mb

    if not source.is_file():
        raise LambdafitError(f"{source} does not exist: give a .jsonl file of /predict bodies or a .csv of rows")
    opened = open_bundle(bundle)
    service, _ = load(opened.settings)
    if service.runtime is None:
        raise LambdafitError(f"the bundle's model does not load ({service.failure}): pack it again")
    scorer = Scorer(
        Endpoint(service, RequestMetrics(opened.settings.namespace, opened.settings.service, enabled=False))
    )
    fmt = RowFormat.of(source)
    partial = target.with_name(f".{target.name}.partial")
    rows = errors = 0
    start = time.perf_counter()
    try:
        with source.open(encoding="utf-8", newline="") as handle, partial.open("w", encoding="utf-8") as out:
            for line in scorer.lines(read_rows(handle, fmt), fmt):
                out.write(dumps_line(line) + "\n")
                rows += 1
                errors += line["status"] >= 400
                if progress is not None and rows % every == 0:
                    progress(rows)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    if progress is not None:
        progress(rows)
    return BatchRun(rows, errors, time.perf_counter() - start, peak_rss_mb(), target)
