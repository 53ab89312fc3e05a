"""`lambdafit batch` over a large file: rows per second and peak memory (which stays flat: the file is
streamed), and what the same rows would cost on Lambda through the Distributed Map.

    .venv/bin/python bench/batch.py BUNDLE [--rows 100000]     # e.g. build/digits
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from packager.bundle import read_app  # noqa: E402
from packager.cost import MB_PER_VCPU, PRICE_PER_GB_SECOND, PRICE_PER_MILLION_REQUESTS  # noqa: E402

EXPRESS_PER_MILLION = 1.00
"""Step Functions Express: $1.00 per million child workflows (their duration, at 64 MB, is negligible here)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    sample = json.loads((args.bundle / "function" / "model" / "warmup.json").read_text())
    base = np.asarray(sample["inputs"], dtype=np.float32)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="lambdafit-batch-") as tmp:
        source, target = Path(tmp) / "rows.jsonl", Path(tmp) / "out.jsonl"
        with source.open("w") as handle:
            for index in range(args.rows):
                row = np.clip(base + rng.normal(0, 0.5, base.shape).astype(np.float32), 0, 16).round(3)
                handle.write(json.dumps({"id": f"r{index}", "inputs": row.tolist()}) + "\n")
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "packager.cli", "batch", str(args.bundle), str(source),
                                 str(target)], capture_output=True, text=True, check=True, cwd=ROOT)  # fmt: skip
        wall = time.perf_counter() - start
        lines = sum(1 for _ in target.open())
        size_mb = source.stat().st_size / 1e6
    print(result.stdout.strip())
    print(f"{args.rows:,} rows ({size_mb:.0f} MB of JSONL) -> {lines:,} lines; {wall:.1f} s wall including start-up")
    summary = result.stdout.split("in ")[-1]
    rows_per_s = float(summary.split(" rows/s")[0].split(": ")[-1].replace(",", ""))
    app = read_app(args.bundle)
    per_row_s = 1 / rows_per_s
    share = min(1.0, app.memory_mb / MB_PER_VCPU)
    batches = math.ceil(1_000_000 / app.batch_rows)
    compute = 1_000_000 * per_row_s / share * (app.memory_mb / 1024) * PRICE_PER_GB_SECOND[app.arch]
    requests = batches * PRICE_PER_MILLION_REQUESTS / 1e6
    express = batches * EXPRESS_PER_MILLION / 1e6
    print(
        f"a million rows on Lambda at {app.memory_mb} MB ({share:.2f} vCPU), {app.batch_rows} rows per invocation: "
        f"${compute:.2f} compute + ${requests:.4f} requests + ${express:.4f} Express child workflows = "
        f"${compute + requests + express:.2f} (per-row time from this run, slowed to the share; us-east-1)"
    )


if __name__ == "__main__":
    main()
