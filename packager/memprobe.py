"""Run by packager.memory in a fresh process: the handler's duration at each memory size's CPU share.

python -m packager.memprobe MODEL_DIR SINGLE_THREAD_DIR CGROUP V2 SIZES SECONDS   ->  one JSON line

The process moves itself into the cgroup before it imports anything, so onnxruntime's threads are
created inside it; then, size by size, it sets the quota and calls the handler back to back: below one
vCPU the one whose manifest asks for a single onnxruntime thread, from there that one and the default
(a thread per visible core), keeping the faster.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any


def main(model_dir: str, single_dir: str, cgroup: str, v2: str, sizes: str, seconds: str) -> None:
    from packager.quota import PERIOD_US, CgroupQuota

    quota = CgroupQuota(Path(cgroup), v2 == "1")
    quota.enter()
    quota.limit(2.0)

    import numpy as np

    from handlers.app import make_handler
    from handlers.contract import WARMUP_FILE, ApiKind, RuntimeSettings
    from handlers.events import SHAPES
    from packager.emulator import LambdaContext
    from packager.memory import MIN_CALLS, thread_choices, vcpus

    handlers = {
        threads: make_handler(RuntimeSettings(model_dir=Path(folder), metrics=False))
        for threads, folder in ((None, model_dir), (1, single_dir))
    }
    body = (Path(model_dir) / WARMUP_FILE).read_text(encoding="utf-8")
    event = SHAPES[ApiKind.REST].build("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
    context = LambdaContext(function_name="sweep")
    if any(handler(event, context)["statusCode"] != 200 for handler in handlers.values()):
        raise SystemExit("the handler does not answer the sample request with 200")

    def measure(handler: Any, memory: int) -> dict[str, Any]:
        quota.limit(vcpus(memory))
        settle = time.perf_counter() + PERIOD_US / 1e6
        for _ in range(2):
            handler(event, context)
        while time.perf_counter() < settle:  # a period of back-to-back calls: the quota in force, no saved-up burst
            handler(event, context)
        throttled = quota.throttled_us()
        durations: list[float] = []
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        deadline = wall_start + float(seconds)
        while len(durations) < MIN_CALLS or time.perf_counter() < deadline:
            start = time.perf_counter()
            handler(event, context)
            durations.append((time.perf_counter() - start) * 1000)
        cpu_vcpus = (time.process_time() - cpu_start) / (time.perf_counter() - wall_start)
        return {
            "memory_mb": memory,
            "mean_ms": float(np.mean(durations)),
            "p50_ms": float(np.percentile(durations, 50)),
            "p95_ms": float(np.percentile(durations, 95)),
            "billed_ms": float(np.mean([math.ceil(d) for d in durations])),
            "calls": len(durations),
            "throttled_ms": (quota.throttled_us() - throttled) / 1000,
            "cpu_vcpus": cpu_vcpus,
        }

    points = []
    for memory in (int(size) for size in sizes.split(",")):
        measured = {threads: measure(handlers[threads], memory) for threads in thread_choices(memory)}
        threads = min(measured, key=lambda t: measured[t]["mean_ms"])
        points.append(measured[threads] | {"threads": threads})
    from handlers.runtime import visible_cores

    cores = visible_cores()
    print(json.dumps({"points": points, "period_ms": PERIOD_US / 1000, "cores": cores}))


if __name__ == "__main__":
    main(*sys.argv[1:7])
