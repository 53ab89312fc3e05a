"""Cold start of a bundle's function, split, on the normal path and on the SnapStart path, in fresh processes.

Normal init (what every cold sandbox pays without SnapStart): a fresh interpreter imports the entry
point, which imports numpy, onnxruntime and powertools, reads and checks the manifest and the model's
sha256, builds the session; then the first request, which also builds what onnxruntime builds lazily.

SnapStart: the same init and the before-snapshot hooks (warm-up inferences) run once per published
version, not in front of a request. A restored sandbox pays Lambda's restore (not measurable here: it
is Firecracker resuming the snapshot, with pages loaded on demand), then the after-restore hooks and
the first request, already warm. Here the same process goes on after the before-snapshot hooks as the
restored sandbox would: its after-restore hooks, then the first request.

    .venv/bin/python bench/coldstart.py BUNDLE [BUNDLE ...] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    t0 = time.perf_counter()
    import numpy, onnxruntime, aws_lambda_powertools.logging  # what the entry point imports first
    t_imports = time.perf_counter()
    import snapshot_restore_py as srp
    import handlers.lambda_function as fn
    t_init = time.perf_counter()
    event = json.load(open(sys.argv[2]))
    timings = fn.service.runtime.timings
    out = {"imports_ms": (t_imports - t0) * 1000, "init_ms": (t_init - t0) * 1000,
           "verify_ms": timings["verify_ms"], "session_ms": timings["session_ms"]}
    if sys.argv[1] == "normal":
        start = time.perf_counter()
        fn.lambda_handler(event, None)
        out["first_request_ms"] = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        fn.lambda_handler(event, None)
        out["second_request_ms"] = (time.perf_counter() - start) * 1000
        print(json.dumps(out))
        sys.exit(0)
    start = time.perf_counter()
    for func, args, kwargs in reversed(srp.get_before_snapshot()):
        func(*args, **kwargs)
    out["before_snapshot_ms"] = (time.perf_counter() - start) * 1000
    start = time.perf_counter()
    for func, args, kwargs in srp.get_after_restore():
        func(*args, **kwargs)
    restored = time.perf_counter()
    fn.lambda_handler(event, None)
    out |= {"after_restore_ms": (restored - start) * 1000, "first_request_ms": (time.perf_counter() - restored) * 1000}
    print(json.dumps(out))
    """
)


def run(bundle: Path, path: str) -> dict[str, float]:
    event = next((bundle / "events").glob("predict-*.json"))
    environ = os.environ | {"LAMBDAFIT_MODEL_DIR": str(bundle / "function" / "model"), "PYTHONPATH": str(ROOT),
                            "POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "WARNING"}  # fmt: skip
    result = subprocess.run([sys.executable, "-c", CHILD, path, str(event)], capture_output=True, text=True,
                            env=environ, check=True)  # fmt: skip
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def median(samples: list[dict[str, float]], key: str) -> float:
    return statistics.median(s[key] for s in samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundles", type=Path, nargs="+")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print("| bundle | path | imports ms | manifest + sha256 ms | session ms | init total ms | before snapshot ms "
          "| after restore ms | first request ms | to first answer ms |")  # fmt: skip
    print("|" + "---|" * 10)
    for bundle in args.bundles:
        normal: list[dict[str, float]] = []
        snap: list[dict[str, float]] = []
        for _ in range(args.rounds):  # interleaved: the machine's load hits both paths alike
            normal.append(run(bundle, "normal"))
            snap.append(run(bundle, "snapstart"))
        n = {k: median(normal, k) for k in normal[0]}
        s = {k: median(snap, k) for k in snap[0]}
        print(f"| {bundle.name} | normal | {n['imports_ms']:.0f} | {n['verify_ms']:.1f} | {n['session_ms']:.0f} | "
              f"{n['init_ms']:.0f} | - | - | {n['first_request_ms']:.1f} (then {n['second_request_ms']:.1f}) | "
              f"{n['init_ms'] + n['first_request_ms']:.0f} |")  # fmt: skip
        print(f"| {bundle.name} | SnapStart | ({s['imports_ms']:.0f}) | ({s['verify_ms']:.1f}) | ({s['session_ms']:.0f}) | "
              f"({s['init_ms']:.0f}, at publish) | {s['before_snapshot_ms']:.0f} | {s['after_restore_ms']:.2f} | "
              f"{s['first_request_ms']:.1f} | {s['after_restore_ms'] + s['first_request_ms']:.1f} + Lambda's restore |")  # fmt: skip
    print(f"\nmedians of {args.rounds} fresh processes per path, on this machine's full cores (Lambda's CPU share "
          "at the function's memory slows the CPU parts proportionally below 1,769 MB)")  # fmt: skip


if __name__ == "__main__":
    main()
