"""Regenerate tests/events/ with the real AWS SAM CLI (`sam local generate-event`).

    .venv/bin/python tests/events/generate.py

REST (v1) events come from `apigateway aws-proxy`, HTTP API (v2) events from `apigateway
http-api-proxy`; the batch function's SQS events from `sqs receive-message`, and the notification of a
batch input landing in the batch bucket from `s3 put` (those in batch/). SAM has no generator for Lambda function URLs, whose events use the same 2.0
payload format: the `-url` files are the HTTP API events with a function URL's request context.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
SAM = str(HERE.parents[1] / ".venv" / "bin" / "sam")
SAMPLE = [0.0, 0.0, 0.3125, 0.8125, 0.5625, 0.0625, 0.0, 0.0] * 8
V2_INFER = {"id": "42", "inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP32", "data": SAMPLE}]}

CASES: dict[str, tuple[str, str, str]] = {
    "predict": ("POST", "predict", json.dumps({"inputs": [SAMPLE]})),
    "health": ("GET", "health", ""),
    "unknown-route": ("GET", "nope", ""),
    "wrong-method": ("GET", "predict", ""),
    "malformed-json": ("POST", "predict", '{"inputs": [[1, 2'),
    "wrong-shape": ("POST", "predict", '{"inputs": [[1, 2, 3]]}'),
    "wrong-dtype": ("POST", "predict", json.dumps({"inputs": [["a"] * 64]})),
    "empty-body": ("POST", "predict", ""),
    "v2-server": ("GET", "v2", ""),
    "v2-live": ("GET", "v2/health/live", ""),
    "v2-ready": ("GET", "v2/health/ready", ""),
    "v2-metadata": ("GET", "v2/models/digits", ""),
    "v2-model-ready": ("GET", "v2/models/digits/ready", ""),
    "v2-infer": ("POST", "v2/models/digits/infer", json.dumps(V2_INFER)),
    "v2-infer-unknown-model": ("POST", "v2/models/nope/infer", json.dumps(V2_INFER)),
    "openapi": ("GET", "openapi.json", ""),
    "docs": ("GET", "docs", ""),
}


def generate(kind: str, method: str, path: str, body: str) -> dict[str, object]:
    command = [SAM, "local", "generate-event", "apigateway", kind, "--method", method, "--path", path, "--body", body]
    env = os.environ | {"SAM_CLI_TELEMETRY": "0"}
    event: dict[str, object] = json.loads(
        subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout
    )
    if kind == "http-api-proxy":
        event["rawQueryString"] = ""
        event.pop("queryStringParameters", None)
        event.pop("cookies", None)
        if body:
            event["body"], event["isBase64Encoded"] = body, False
        else:
            event.pop("body", None)
    return event


def to_function_url(event: dict[str, object]) -> dict[str, object]:
    url = json.loads(json.dumps(event))
    context = url["requestContext"]
    context.pop("authentication", None)
    context["authorizer"] = {"iam": None}
    context["domainName"] = "abcdefghij.lambda-url.us-east-1.on.aws"
    context["domainPrefix"] = "abcdefghij"
    context["accountId"] = "anonymous"
    return url


BATCH_CASES: dict[str, tuple[list[str], dict[str, object] | None]] = {
    "sqs-predict": (["sqs", "receive-message", "--queue-name", "digits-batch"], {"id": "row-1", "inputs": [SAMPLE]}),
    "sqs-poison": (["sqs", "receive-message", "--queue-name", "digits-batch"], {"id": "poison", "inputs": [[1, 2, 3]]}),
    "s3-put-rows": (["s3", "put", "--bucket", "digits-batch", "--key", "inputs/rows.jsonl"], None),
}
"""SAM pastes --body into its template unescaped, so a JSON body is set afterwards."""


def generate_other(args: list[str], body: dict[str, object] | None) -> dict[str, object]:
    env = os.environ | {"SAM_CLI_TELEMETRY": "0"}
    command = [SAM, "local", "generate-event", *args]
    event = json.loads(subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout)
    if body is not None:
        event["Records"][0]["body"] = json.dumps(body)
    return dict(event)


def main() -> None:
    for name, (method, path, body) in CASES.items():
        rest = generate("aws-proxy", method, path, body)
        http = generate("http-api-proxy", method, path, body)
        for suffix, event in (("rest", rest), ("http", http), ("url", to_function_url(http))):
            (HERE / f"{name}-{suffix}.json").write_text(json.dumps(event, indent=2) + "\n")
    for name, (args, body) in BATCH_CASES.items():
        (HERE / "batch" / f"{name}.json").write_text(json.dumps(generate_other(args, body), indent=2) + "\n")


if __name__ == "__main__":
    main()
