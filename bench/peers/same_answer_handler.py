"""The minimal handler grown to give lambdafit's answer, written flat by hand: the outputs, a classifier's
top 5 labels with softmax scores, the model's name and version, and one EMF metrics line per request,
with the input's dtype, shape and finiteness checked. No routing, no other error handling, no logs.

It prices the answer itself, so the gap between lambdafit and the minimal handler can be split into what
the richer answer costs and what lambdafit's layers cost. MODEL names the .onnx file; the session is the
one the benchmark passes in; MANIFEST, when set, names the bundle's manifest.json (labels, name)."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime

session = onnxruntime.InferenceSession(os.environ["MODEL"], providers=["CPUExecutionProvider"])
input_name = session.get_inputs()[0].name
input_rank = len(session.get_inputs()[0].shape)
output_names = [output.name for output in session.get_outputs()]
integers = session.get_inputs()[0].type == "tensor(int64)"
manifest = json.loads(Path(os.environ["MANIFEST"]).read_text()) if os.environ.get("MANIFEST") else {}
labels = manifest.get("labels") or [str(i) for i in range(1000)]
name, version = manifest.get("name", "model"), manifest.get("version", "1")
classifier = output_names.index(manifest["classifier_output"]) if manifest.get("classifier_output") else None
METRICS = (
    '{"_aws":{"Timestamp":%d,"CloudWatchMetrics":[{"Namespace":"lambdafit","Dimensions":[["service"]],'
    '"Metrics":[{"Name":"Requests","Unit":"Count"},{"Name":"InferenceLatency","Unit":"Milliseconds"}]}]},'
    '"service":"%s","Requests":1,"InferenceLatency":%.3f}\n'
)


def top5(row: list[float]) -> dict[str, object]:
    top = max(row)
    exps = [math.exp(v - top) for v in row]
    total = sum(exps)
    order = sorted(range(len(row)), key=row.__getitem__, reverse=True)[:5]
    best = [{"label": labels[i], "score": round(exps[i] / total * 1e6) / 1e6} for i in order]
    return {"label": best[0]["label"], "score": best[0]["score"], "top_k": best}


def handler(event, context):  # type: ignore[no-untyped-def]
    raw = np.array(json.loads(event["body"])["inputs"])
    if raw.dtype.kind != ("i" if integers else "f") or raw.ndim != input_rank:
        return {"statusCode": 400, "body": '{"error": "send rows of numbers of the input\'s type"}'}
    with np.errstate(over="ignore"):
        inputs = raw.astype(np.int64 if integers else np.float32)
        if not integers and not math.isfinite(inputs.sum()):
            return {"statusCode": 400, "body": '{"error": "values too large"}'}
    start = time.perf_counter()
    outputs = session.run(output_names, {input_name: inputs})
    latency = (time.perf_counter() - start) * 1000
    listed = [output.tolist() for output in outputs]
    answer = {"outputs": dict(zip(output_names, listed, strict=True)), "model": name, "version": version}
    if classifier is not None:
        answer["predictions"] = [top5(row) for row in listed[classifier]]
    sys.stdout.write(METRICS % (time.time() * 1000, name, latency))
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(answer, separators=(",", ":")),
        "isBase64Encoded": False,
    }
