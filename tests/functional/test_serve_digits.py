"""The digits example packed for real, served by `lambdafit serve`, called over HTTP on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime

from tests.conftest import http

JSON = {"Content-Type": "application/json"}


def test_whole_held_out_split_over_http_matches_onnxruntime(
    digits_server: str, digits_bundle: Path, digits_files: dict[str, Path]
) -> None:
    data = np.load(digits_files["eval"])
    x, labels = data["x"], data["labels"]
    served = []
    for start in range(0, len(x), 40):
        status, body = http(
            "POST",
            f"{digits_server}/predict",
            json.dumps({"inputs": x[start : start + 40].tolist()}).encode(),
            JSON,
        )
        assert status == 200, body
        served.append(np.array(body["outputs"]["logits"], dtype=np.float32))
        assert body["model"] == "digits"
        assert [p["label"] for p in body["predictions"]] == [str(i) for i in served[-1].argmax(1)]
    logits = np.concatenate(served)

    model = digits_bundle / "function" / "model" / "model.onnx"
    direct = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(logits, direct, rtol=1e-6, atol=1e-6)
    accuracy = float(np.mean(logits.argmax(1) == labels))
    assert accuracy >= 0.95
    assert accuracy == float(np.mean(direct.argmax(1) == labels))


def test_health(digits_server: str) -> None:
    assert http("GET", f"{digits_server}/health") == (200, {"status": "ok", "model_ready": True})


def test_bad_requests_get_the_right_4xx_with_a_message(digits_server: str) -> None:
    cases = [
        ("POST", "/predict", b'{"inputs": [[1, 2', JSON, 400, "malformed_json"),
        ("POST", "/predict", json.dumps({"inputs": [[0.0] * 10]}).encode(), JSON, 400, "wrong_shape"),
        ("POST", "/predict", json.dumps({"inputs": [["a"] * 64]}).encode(), JSON, 400, "wrong_dtype"),
        ("POST", "/predict", b"", JSON, 400, "empty_body"),
        ("POST", "/predict", b'{"inputs": [[NaN]]}', JSON, 400, "malformed_json"),
        ("POST", "/predict", b"x=1", {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
        ("GET", "/nope", None, {}, 404, "not_found"),
        ("DELETE", "/predict", None, {}, 405, "method_not_allowed"),
        ("POST", "/predict", b"[" * 100_000 + b"]" * 100_000, JSON, 400, "malformed_json"),
        (
            "POST",
            "/predict",
            b'{"inputs": [' + b"0.5," * 1_600_000 + b"0.5]}",
            JSON,
            413,
            "payload_too_large",
        ),
    ]
    for method, path, body, headers, status, code in cases:
        got_status, got = http(method, f"{digits_server}{path}", body, headers)
        assert (got_status, got["code"]) == (status, code), (path, body and body[:40], got)
        assert len(got["error"]) > 20
        assert "Traceback" not in got["error"]
