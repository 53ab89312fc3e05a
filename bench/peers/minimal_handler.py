"""The handler a user would write by hand: parse, run, answer. No validation, no logs, no metrics.

MODEL names the .onnx file; the session is the one the benchmark passes in (or opened here)."""

from __future__ import annotations

import json
import os

import numpy as np
import onnxruntime

session = onnxruntime.InferenceSession(os.environ["MODEL"], providers=["CPUExecutionProvider"])
input_name = session.get_inputs()[0].name
dtype = np.int64 if session.get_inputs()[0].type == "tensor(int64)" else np.float32


def handler(event, context):  # type: ignore[no-untyped-def]
    body = json.loads(event["body"])
    inputs = np.asarray(body["inputs"], dtype=dtype)
    outputs = session.run(None, {input_name: inputs})[0]
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"outputs": outputs.tolist()}),
    }
