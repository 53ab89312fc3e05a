"""Run in a fresh process by `measure`: what a cold Lambda pays to load a model, and its peak memory.

python -m packager.probe MODEL.onnx FEED.npz   ->  one JSON line
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path


def peak_rss_mb() -> float:
    """VmHWM: this process's own high-water mark (ru_maxrss would include the parent's pages from
    before exec, so a torch-sized packager would inflate it)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(model: str, feed_path: str) -> None:
    start = time.perf_counter()
    import numpy as np

    from handlers.runtime import open_session

    imported = time.perf_counter()
    session = open_session(Path(model))
    created = time.perf_counter()
    with np.load(feed_path, allow_pickle=False) as archive:
        feed = {
            key: archive[key].astype(object) if archive[key].dtype.kind == "U" else archive[key]
            for key in archive.files
        }
    session.run(None, feed)
    first = time.perf_counter()
    print(
        json.dumps(
            {
                "import_ms": (imported - start) * 1000,
                "session_ms": (created - imported) * 1000,
                "first_run_ms": (first - created) * 1000,
                "peak_rss_mb": peak_rss_mb(),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
