"""Every route of the endpoint under REST (v1), HTTP API (v2) and function URL events from tests/events/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from packager.emulator import LambdaContext
from tests.conftest import handler_for, load_event

KINDS = ("rest", "http", "url")
EXPECTED = {
    "predict": (200, None),
    "health": (200, None),
    "unknown-route": (404, "not_found"),
    "wrong-method": (405, "method_not_allowed"),
    "malformed-json": (400, "malformed_json"),
    "wrong-shape": (400, "wrong_shape"),
    "wrong-dtype": (400, "wrong_dtype"),
    "empty-body": (400, "empty_body"),
    "v2-server": (200, None),
    "v2-live": (200, None),
    "v2-ready": (200, None),
    "v2-metadata": (200, None),
    "v2-model-ready": (200, None),
    "v2-infer": (200, None),
    "v2-infer-unknown-model": (404, "unknown_model"),
    "openapi": (200, None),
    "docs": (200, None),
}


@pytest.fixture(scope="module")
def handlers(digits_bundle: Path) -> dict[str, Any]:
    handler = handler_for(digits_bundle / "function" / "model")
    return dict.fromkeys(KINDS, handler)


def call(handler: Any, event: dict[str, Any]) -> tuple[int, str, dict[str, str]]:
    result = handler(event, LambdaContext(function_name="digits"))
    headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
    return result["statusCode"], result["body"], headers


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_every_route_under_every_event_shape(handlers: dict[str, Any], kind: str, case: str) -> None:
    status, body, headers = call(handlers[kind], load_event(f"{case}-{kind}.json"))
    want_status, want_code = EXPECTED[case]
    assert status == want_status, body[:300]
    if case == "docs":
        assert headers["content-type"].startswith("text/html") and "SwaggerUIBundle" in body
        return
    payload = json.loads(body)
    if want_code:
        assert payload["code"] == want_code and len(payload["error"]) > 15


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_v2_infer_matches_predict(handlers: dict[str, Any], kind: str) -> None:
    _, predicted, _ = call(handlers[kind], load_event(f"predict-{kind}.json"))
    _, inferred, _ = call(handlers[kind], load_event(f"v2-infer-{kind}.json"))
    logits = json.loads(predicted)["outputs"]["logits"]
    response = json.loads(inferred)
    assert response["model_name"] == "digits" and response["id"] == "42"
    [output] = response["outputs"]
    assert (output["name"], output["datatype"], output["shape"]) == ("logits", "FP32", [1, 10])
    np.testing.assert_array_equal(np.array(output["data"]).reshape(1, 10), np.array(logits))


def test_v2_metadata_describes_the_signature(handlers: dict[str, Any]) -> None:
    _, body, _ = call(handlers["rest"], load_event("v2-metadata-rest.json"))
    meta = json.loads(body)
    assert meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 64]}]
    assert meta["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}]


def test_openapi_document_is_valid_and_lists_the_routes(handlers: dict[str, Any]) -> None:
    from openapi_spec_validator import validate

    _, body, _ = call(handlers["http"], load_event("openapi-http.json"))
    document = json.loads(body)
    validate(document)
    assert {"/predict", "/health", "/v2/models/{name}/infer", "/v2/health/ready"} <= set(document["paths"])


def test_docs_assets_are_served_from_the_bundle(handlers: dict[str, Any]) -> None:
    event = load_event("docs-rest.json") | {"path": "/docs/swagger-ui-bundle.js"}
    status, body, headers = call(handlers["rest"], event)
    assert status == 200 and headers["content-type"] == "application/javascript"
    assert "SwaggerUIBundle" in body
