"""Error mapping: each failure becomes its status, a machine code and a message, never a traceback."""

from __future__ import annotations

import json

import pytest

from handlers.app import Endpoint, dispatch
from handlers.errors import (
    BadRequestError,
    MethodNotAllowedError,
    ModelNotReadyError,
    NotFoundError,
    PayloadTooLargeError,
    ServiceError,
    UnsupportedMediaTypeError,
)
from handlers.metrics import RequestMetrics
from handlers.runtime import Service
from tests.conftest import load_event


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (BadRequestError("m"), 400, "bad_request"),
        (NotFoundError("m"), 404, "not_found"),
        (MethodNotAllowedError("m"), 405, "method_not_allowed"),
        (PayloadTooLargeError("m"), 413, "payload_too_large"),
        (UnsupportedMediaTypeError("m"), 415, "unsupported_media_type"),
        (ModelNotReadyError("m"), 503, "model_not_ready"),
        (ServiceError("m"), 500, "internal_error"),
        (BadRequestError("m", code="wrong_shape"), 400, "wrong_shape"),
    ],
)
def test_error_classes_carry_status_and_code(error: ServiceError, status: int, code: str) -> None:
    assert error.status == status
    assert error.to_body() == {"error": "m", "code": code}


def call(service: Service, event_name: str) -> tuple[int, dict[str, str]]:
    result = dispatch(Endpoint(service, RequestMetrics("test", "test", enabled=False)), load_event(event_name))
    return result["statusCode"], json.loads(result["body"])


def test_a_model_that_failed_to_load_answers_503_with_the_kind_of_failure_only() -> None:
    status, body = call(Service(failure="checksum_mismatch"), "predict-rest.json")
    assert status == 503
    assert body == {
        "error": "the model is not loaded (checksum_mismatch); the function retries, and its logs say why",
        "code": "model_not_ready",
    }


def test_health_tells_the_truth_when_the_model_is_not_ready() -> None:
    status, body = call(Service(failure="model_object_missing"), "health-rest.json")
    assert (status, body) == (503, {"status": "unavailable", "model_ready": False, "reason": "model_object_missing"})


def test_routing_errors_without_a_model() -> None:
    assert call(Service(failure="x"), "unknown-route-rest.json")[0] == 404
    status, body = call(Service(failure="x"), "wrong-method-rest.json")
    assert status == 405
    assert "use POST" in body["error"]


def test_a_response_over_six_megabytes_is_refused_with_413() -> None:
    from handlers.app import MAX_BODY_BYTES, json_response

    assert json_response({"outputs": [0.5] * 1000}).status == 200
    with pytest.raises(PayloadTooLargeError) as caught:
        json_response({"outputs": [0.123456789] * (MAX_BODY_BYTES // 10)})
    assert caught.value.code == "response_too_large"
    assert caught.value.status == 413
    assert "send fewer rows" in caught.value.message
