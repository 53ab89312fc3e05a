"""The packager/handler contract: settings through the environment, event shapes, the one route table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from handlers.contract import ApiKind, ContractError, RuntimeSettings, S3Uri
from handlers.events import SHAPES, FunctionUrlEvent, HttpApiEvent, RestEvent, shape_of
from handlers.routes import ROUTES, RouteTable
from tests.conftest import EVENTS, ROOT, load_event


def test_settings_round_trip_through_the_environment() -> None:
    settings = RuntimeSettings(
        model_uri=S3Uri.parse("s3://models/a/b/model.onnx"), tracing=True, service="digits", log_level="DEBUG",
        metrics=False,
    )  # fmt: skip
    env = settings.to_env()
    assert env["MODEL_URI"] == "s3://models/a/b/model.onnx" and env["LAMBDAFIT_TRACING"] == "true"
    assert RuntimeSettings.from_env(env) == settings
    assert RuntimeSettings.from_env({}) == RuntimeSettings(metrics=True)
    assert not RuntimeSettings.from_env({"POWERTOOLS_DEV": "true"}).metrics


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LAMBDAFIT_TRACING": "maybe"}, "LAMBDAFIT_TRACING='maybe' is not a boolean"),
        ({"MODEL_URI": "models/model.onnx"}, "is not an S3 URI"),
    ],
)
def test_bad_settings_say_which_variable_is_wrong(env: dict[str, str], message: str) -> None:
    with pytest.raises(ContractError, match=message):
        RuntimeSettings.from_env(env)


def test_s3_uris() -> None:
    assert S3Uri.parse("s3://bucket/a/b.onnx") == S3Uri("bucket", "a/b.onnx")
    assert S3Uri.parse("s3://bucket", prefix_only=True).join("x", "y/") == S3Uri("bucket", "x/y")
    assert S3Uri("bucket", "k").arn == "arn:aws:s3:::bucket/k"


@pytest.mark.parametrize("api", list(ApiKind))
def test_each_shape_parses_the_events_it_builds(api: ApiKind) -> None:
    shape = SHAPES[api]
    event = shape.build("post", "/v2/models/m/infer", body=b"\xff\x00", headers={"Content-Type": "x/y"}, query="a=1")
    assert shape_of(event) is shape
    request = shape.parse(event)
    assert (request.method, request.path, request.query) == ("POST", "/v2/models/m/infer", {"a": "1"})
    assert request.content_type == "x/y" and request.body() == b"\xff\x00"


@pytest.mark.parametrize("path", sorted(EVENTS.glob("*.json")), ids=lambda p: p.name)
def test_every_sam_generated_event_is_recognised(path: Path) -> None:
    """tests/events/ comes from `sam local generate-event`: each file is the shape its name says."""
    expected = {"rest": RestEvent, "http": HttpApiEvent, "url": FunctionUrlEvent}[path.stem.rsplit("-", 1)[1]]
    event = load_event(path.name)
    assert shape_of(event) is expected
    assert expected.parse(event).path.startswith("/")


@pytest.mark.parametrize("event", [{}, [], "x", {"Records": [{"eventSource": "aws:sqs"}]}, {"version": "2.0"}])
def test_what_is_not_an_http_event_is_recognised_as_such(event: object) -> None:
    assert shape_of(event) is None


def test_route_table_matches_405s_and_lists() -> None:
    table = RouteTable()
    match = table.match("POST", "/v2/models/digits/versions/abc/infer")
    assert match is not None and match.route.endpoint == "infer"
    assert match.params == {"name": "digits", "version": "abc"}
    assert table.match("GET", "/health/") is not None
    assert table.match("GET", "/predict") is None and table.allowed("/predict") == ("POST",)
    assert table.allowed("/v2/models/x/infer") == ("POST",) and table.allowed("/nope") == ()


def test_openapi_paths_are_the_routes() -> None:
    from handlers.openapi import document

    paths = document(None, "1")["paths"]
    documented = {(r.path, r.method.lower()) for r in ROUTES if r.documented and r.endpoint not in ("openapi", "docs")}
    assert {(path, method) for path, ops in paths.items() for method in ops} == documented


def test_the_cli_starts_without_the_handler_request_path() -> None:
    """`lambdafit --help` imports neither powertools nor numpy (they cost most of a second)."""
    probe = (
        "import sys, runpy; sys.argv = ['lambdafit', '--help']\n"
        "try:\n    runpy.run_module('packager.cli', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('numpy', 'onnxruntime', 'aws_lambda_powertools', 'torch', 'onnx') if m in sys.modules)\n"
        "print(); print(__import__('json').dumps(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
    assert "pack" in result.stdout and "serve" in result.stdout
