"""Wall time and peak memory of `lambdafit pack`, this checkout against another one, interleaved.

    .venv/bin/python bench/pack_time.py                          # this checkout only
    .venv/bin/python bench/pack_time.py --baseline /tmp/base     # a worktree of an older commit too
    .venv/bin/python bench/pack_time.py --cases digits,digits-prune --repeats 3

Each case runs `python -m packager.cli pack ...` in a fresh process from the checkout's folder (so that
checkout's `packager` is the one imported), A, B, A, B..., and reports the median and spread of the wall
time and of the peak RSS (GNU time's maximum resident set: the largest of the pack process and the
subprocesses it waited for), and, where the checkout writes it to report.json, the packing process's own
peak and its largest measuring worker's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import runpy
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples/digits"
TRANSFORMER = ROOT / "examples/transformer"

CASES: dict[str, list[str]] = {
    "digits": [
        f"{DIGITS}/model.py:build", "--eval", f"{DIGITS}/eval.npz", "--calibration", f"{DIGITS}/train.npz",
    ],
    "digits-prune": [
        f"{DIGITS}/model.py:build", "--eval", f"{DIGITS}/eval.npz", "--calibration", f"{DIGITS}/train.npz",
        "--train", f"{DIGITS}/train.npz",
    ],
    "transformer": [
        f"{TRANSFORMER}/model.py:build", "--budget", "zip", "--eval", f"{TRANSFORMER}/eval.npz",
        "--calibration", f"{TRANSFORMER}/calibration.npz", "--recipes", "slim+int8-dynamic,slim+int4",
    ],
}  # fmt: skip


def run(checkout: Path, case: str, out: Path) -> tuple[float, float, str]:
    command = [
        "/usr/bin/time", "-f", "%e %M", sys.executable, "-m", "packager.cli", "pack", *CASES[case],
        "--name", "bench", "--output", str(out), "--force", "--allow-slower",
    ]  # fmt: skip
    env = os.environ | {"PYTHONPATH": str(checkout)}
    result = subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"pack failed in {checkout} for {case}:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    wall, kilobytes = re.findall(r"^([\d.]+) (\d+)$", result.stderr, re.MULTILINE)[-1]
    own = json.loads((out / "bench" / "report.json").read_text()).get("pack")
    split = f"{own['peak_rss_mb']:.0f} / {own['workers_peak_rss_mb']:.0f}" if own else "-"
    return float(wall), int(kilobytes) / 1024, split


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", type=Path, help="another checkout of lambdafit to compare with")
    parser.add_argument("--cases", default="digits,digits-prune")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for prepare in (DIGITS / "model.py", TRANSFORMER / "model.py"):
        if not (prepare.parent / "eval.npz").is_file():
            runpy.run_path(str(prepare), run_name="__main__")
    checkouts = {"this": ROOT} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    print(
        f"{'case':14s} {'checkout':9s} {'wall s (median, min-max)':28s} {'peak RSS MB (median, min-max)':30s} "
        "pack process / largest worker MB (last run, from report.json)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases.split(","):
            times: dict[str, list[tuple[float, float, str]]] = {name: [] for name in checkouts}
            for _ in range(args.repeats):
                for name, checkout in checkouts.items():
                    times[name].append(run(checkout, case, Path(tmp) / name))
            for name, samples in times.items():
                walls, peaks = [w for w, _, _ in samples], [m for _, m, _ in samples]
                wall = f"{statistics.median(walls):.1f} ({min(walls):.1f}-{max(walls):.1f})"
                peak = f"{statistics.median(peaks):.0f} ({min(peaks):.0f}-{max(peaks):.0f})"
                print(f"{case:14s} {name:9s} {wall:28s} {peak:30s} {samples[-1][2]}", flush=True)


if __name__ == "__main__":
    main()
