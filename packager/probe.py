"""Run in a fresh process by `measure`: what a cold Lambda pays to load a model, its peak memory, and,
given a quality job, the model's quality over the evaluation data.

python -m packager.probe MODEL.onnx FEED.npz [QUALITY_JOB_FOLDER] [--threads N]  ->  one JSON line

--threads: onnxruntime's intra-op threads (default: one per visible core, the handler's default).

Cold start and peak memory are read before anything beyond the handler's own imports is loaded; the
quality job (the evaluation data, fp32's outputs, the metric) is read after, so that a 100 M-parameter
pack never holds a candidate's session and outputs in the packing process.
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


def main(model: str, feed_path: str, quality_path: str | None = None, threads: int | None = None) -> None:
    start = time.perf_counter()
    import numpy as np

    from handlers.runtime import open_session

    imported = time.perf_counter()
    session = open_session(Path(model), threads)
    created = time.perf_counter()
    with np.load(feed_path, allow_pickle=False) as archive:
        feed = {
            key: archive[key].astype(object) if archive[key].dtype.kind == "U" else archive[key]
            for key in archive.files
        }
    session.run(None, feed)
    first = time.perf_counter()
    result = {
        "import_ms": (imported - start) * 1000,
        "session_ms": (created - imported) * 1000,
        "first_run_ms": (first - created) * 1000,
        "peak_rss_mb": peak_rss_mb(),
        "intra_op_threads": session.get_session_options().intra_op_num_threads,
    }
    if quality_path is not None:
        from handlers.runtime import ModelRuntime
        from packager import quality_job
        from packager.measure import predict

        check = quality_job.read(Path(quality_path))
        outputs = predict(ModelRuntime(manifest=check.manifest, session=session), check.data)
        result["quality"] = check.metric.score(outputs, check.reference)
        result["process_peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


if __name__ == "__main__":
    args = sys.argv[1:]
    threads = None
    if "--threads" in args:
        at = args.index("--threads")
        threads = int(args[at + 1])
        del args[at : at + 2]
    main(args[0], args[1], args[2] if len(args) > 2 else None, threads=threads)
