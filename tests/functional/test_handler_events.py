"""The real Lambda handler, fed the API Gateway events the SAM CLI generates (tests/events/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from packager.emulator import LambdaContext
from tests.conftest import handler_for, load_event


@pytest.mark.parametrize(
    ("event", "status", "code"),
    [
        ("predict-rest.json", 200, None),
        ("health-rest.json", 200, None),
        ("unknown-route-rest.json", 404, "not_found"),
        ("wrong-method-rest.json", 405, "method_not_allowed"),
        ("malformed-json-rest.json", 400, "malformed_json"),
        ("wrong-shape-rest.json", 400, "wrong_shape"),
        ("wrong-dtype-rest.json", 400, "wrong_dtype"),
        ("empty-body-rest.json", 400, "empty_body"),
    ],
)
def test_each_event_gets_its_status(digits_bundle: Path, event: str, status: int, code: str | None) -> None:
    handler = handler_for(digits_bundle / "function" / "model")
    result = handler(load_event(event), LambdaContext(function_name="digits"))
    body = json.loads(result["body"])
    assert result["statusCode"] == status, body
    if code:
        assert body["code"] == code
    assert result["headers"]["Content-Type"] == "application/json"


def test_bundle_events_answer_200(digits_bundle: Path) -> None:
    handler = handler_for(digits_bundle / "function" / "model")
    for path in sorted((digits_bundle / "events").glob("*.json")):
        result = handler(json.loads(path.read_text()), LambdaContext(function_name="digits"))
        assert result["statusCode"] == 200, (path.name, result["body"])


def test_tampered_model_is_refused_with_503(digits_bundle: Path, tmp_path: Path) -> None:
    import shutil

    model_dir = tmp_path / "model"
    shutil.copytree(digits_bundle / "function" / "model", model_dir)
    with (model_dir / "model.onnx").open("ab") as handle:
        handle.write(b"\0")
    handler = handler_for(model_dir)
    result = handler(load_event("predict-rest.json"), LambdaContext(function_name="digits"))
    assert result["statusCode"] == 503
    error = json.loads(result["body"])["error"]
    assert "checksum_mismatch" in error
    assert str(tmp_path) not in result["body"]  # paths go to the logs, not to callers
