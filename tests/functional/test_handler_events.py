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


def _json_posts(max_rows: int) -> list[tuple[str, dict[str, object]]]:
    """POST /predict events of every shape, with the bodies and headers clients send, good and bad."""
    from handlers.events import FunctionUrlEvent, HttpApiEvent, RestEvent

    row = [0.0, 0.3125, 0.8125, 0.5625] * 16
    bodies = {
        "one row": json.dumps({"inputs": [row]}),
        "three rows": json.dumps({"inputs": [row] * 3}),
        "ints": json.dumps({"inputs": [[1] * 64]}),
        "short row": json.dumps({"inputs": [row[:10]]}),
        "strings": json.dumps({"inputs": [["a"] * 64]}),
        "null": json.dumps({"inputs": [[None, *row[1:]]]}),
        "too large": json.dumps({"inputs": [[1e39, *row[1:]]]}),
        "named": json.dumps({"inputs": {"x": [row]}}),
        "no inputs": json.dumps({"input": [row]}),
        "malformed": '{"inputs": [[1, 2',
        "NaN token": '{"inputs": [[NaN]]}',
        "too many rows": json.dumps({"inputs": [[0.5] * 64] * (max_rows + 1)}),
    }
    events = []
    for kind, body in bodies.items():
        for shape in (RestEvent, HttpApiEvent, FunctionUrlEvent):
            for media in ("application/json", "application/json; charset=utf-8", "text/csv"):
                for header in ("Content-Type", "content-type"):
                    event = shape.build("POST", "/predict", body=body, headers={header: media})
                    events.append((f"{shape.__name__} {kind} {header}: {media}", event))
    doubled = RestEvent.build("POST", "/predict", body=bodies["one row"], headers={"Content-Type": "application/json"})
    doubled["multiValueHeaders"]["Content-Type"] = ["application/json", "text/csv"]
    both = RestEvent.build("POST", "/predict/", body=bodies["one row"], headers={"Content-Type": "application/json"})
    both["headers"]["content-type"] = "text/csv"
    return [*events, ("repeated Content-Type", doubled), ("two casings", both)]


def test_the_short_way_to_predict_answers_exactly_as_routing_does(digits_bundle: Path) -> None:
    """The handler answers a plain JSON POST /predict straight from the event (Endpoint.express); every
    such event, and every near miss, must get the answer the routed path gives, byte for byte."""
    from handlers.app import Endpoint, dispatch, serve
    from handlers.contract import RuntimeSettings
    from handlers.events import json_post_body
    from handlers.metrics import RequestMetrics
    from handlers.runtime import load_service

    settings = RuntimeSettings(model_dir=digits_bundle / "function" / "model", metrics=False)
    service = load_service(settings)
    handler = serve(service, settings)
    routed = Endpoint(service, RequestMetrics("n", "s", enabled=False))
    context = LambdaContext(function_name="digits")
    short = 0
    statuses = set()
    assert service.runtime is not None and service.runtime.manifest.limits.max_rows is not None
    for label, event in _json_posts(service.runtime.manifest.limits.max_rows) + [
        (name, load_event(name)) for name in ("predict-rest.json", "predict-http.json")
    ]:
        short += json_post_body(event, "/predict") is not None
        answer = handler(event, context)
        assert answer == dispatch(routed, event, context), label
        statuses.add(answer["statusCode"])
    assert short >= 60, "the short way took too few of the plain JSON posts"
    assert statuses >= {200, 400, 413, 415}
