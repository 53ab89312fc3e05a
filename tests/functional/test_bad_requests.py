"""A corpus of bad requests and a Hypothesis fuzz of bodies: never a 5xx, every 4xx says what is wrong."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlers.contract import ApiKind
from handlers.events import SHAPES
from packager.emulator import LambdaContext
from tests.conftest import handler_for

ROW = [0.5] * 64
JSON = {"Content-Type": "application/json"}


def v2(**tensor: Any) -> str:
    return json.dumps({"inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP32", "data": ROW} | tensor]})


MALFORMED = [
    "{", "}", "[", '{"inputs": [[1, 2', '{"inputs": [[1,]]}', "{'inputs': [[1]]}", '{"inputs": NaN}',
    '{"inputs": [[Infinity]]}', '{"inputs": [[-Infinity]]}', "inputs", "null", "true", "1", '"x"',
    '{"inputs": [[1]]} trailing', "\x00\x01\x02", '{"inputs": [[0x10]]}', '{"inputs": [[1e400]]}',
    '{"inputs": [[.5]]}', "[" * 50_000 + "]" * 50_000, '{"a": ' * 10_000 + "1" + "}" * 10_000,
]  # fmt: skip
WRONG_TYPES = [
    {"inputs": "pixels"}, {"inputs": 7}, {"inputs": None}, {"inputs": True}, {"inputs": {}},
    {"inputs": {"y": [ROW]}}, {"inputs": {"x": [ROW], "extra": [ROW]}}, {"input": [ROW]}, {},
    {"inputs": [["a"] * 64]}, {"inputs": [[None] * 64]}, {"inputs": [[True] * 64]}, {"inputs": [[[0.5]] * 64]},
    {"inputs": [ROW, ROW[:10]]}, {"inputs": [ROW[:63]]}, {"inputs": ROW}, {"inputs": [[{"v": 1}] * 64]},
    {"inputs": [[1e39] * 64]}, {"inputs": []}, {"inputs": [[]]}, {"inputs": [[0.5] * 65]},
    {"inputs": {"x": "abc"}}, {"inputs": [[[]]]}, [ROW], {"inputs": [[0.5] * 64] * 0},
]  # fmt: skip
V2_BAD = [
    v2(datatype="FP64"), v2(datatype="INT64"), v2(datatype="STRING"), v2(datatype=None), v2(shape=[1, 63]),
    v2(shape=[64]), v2(shape=[-1, 64]), v2(shape="1,64"), v2(shape=[1.5, 64]), v2(data=ROW[:10]),
    v2(data="abc"), v2(data=[ROW, ROW]), v2(name="y"), v2(name=None), v2(data=[["a"]] * 64),
    json.dumps({"inputs": []}), json.dumps({"inputs": {}}), json.dumps({"inputs": [1, 2]}),
    json.dumps({"inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP32", "data": ROW}] * 2}),
    json.dumps({"inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP32", "data": ROW}], "outputs": [{"name": "z"}]}),
    json.dumps({"inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP32", "data": ROW}], "outputs": "logits"}),
    json.dumps({"inputs": [{"name": "x", "shape": [100000, 100000], "datatype": "FP32", "data": ROW}]}),
    json.dumps({"id": 1}), "[]",
]  # fmt: skip
ROUTES = [
    ("GET", "/nope"), ("GET", "/predict/extra"), ("POST", "/v2/models/nope/infer"), ("GET", "/v2/models/nope"),
    ("GET", "/v2/models/digits/versions/nope"), ("POST", "/v2/models/digits/versions/nope/infer"),
    ("GET", "/v2/models/nope/ready"), ("GET", "/docs/secret.txt"), ("GET", "/docs/../model/model.onnx"),
    ("GET", "/v3"), ("PUT", "/predict"), ("DELETE", "/predict"), ("PATCH", "/predict"), ("GET", "/predict"),
    ("POST", "/health"), ("DELETE", "/health"), ("POST", "/v2"), ("PUT", "/v2/models/digits"),
    ("GET", "/v2/models/digits/infer"), ("POST", "/openapi.json"), ("POST", "/docs"),
]  # fmt: skip
MEDIA = ["text/plain", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded", "image/png"]


def corpus() -> list[tuple[str, str, dict[str, str], bytes | str, bool]]:
    """(method, path, headers, body, base64?) for every bad request."""
    cases: list[tuple[str, str, dict[str, str], bytes | str, bool]] = []
    cases += [("POST", "/predict", JSON, body, False) for body in MALFORMED]
    cases += [("POST", "/v2/models/digits/infer", JSON, body, False) for body in MALFORMED[:8]]
    cases += [("POST", "/predict", JSON, json.dumps(body), False) for body in WRONG_TYPES]
    cases += [("POST", "/v2/models/digits/infer", JSON, body, False) for body in V2_BAD]
    cases += [(method, path, JSON, "", False) for method, path in ROUTES]
    cases += [("POST", "/predict", {"Content-Type": media}, json.dumps({"inputs": [ROW]}), False) for media in MEDIA]
    cases += [
        ("POST", "/predict", JSON, "", False),
        ("POST", "/predict", JSON, "not base64 !!!", True),
        ("POST", "/predict", JSON, base64.b64encode(b"\xff\xfe\x00").decode(), True),
        ("POST", "/predict", JSON, '{"inputs": [' + "0.5," * 1_700_000 + "0.5]}", False),
        ("POST", "/predict", JSON, json.dumps({"inputs": [ROW] * 70_000}), False),
        ("POST", "/v2/models/digits/infer", JSON, v2(shape=[70_000, 64], data=ROW * 70_000), False),
    ]
    return cases


@pytest.fixture(scope="module")
def handlers(digits_bundle: Path) -> dict[ApiKind, Any]:
    handler = handler_for(digits_bundle / "function" / "model")
    return dict.fromkeys(ApiKind, handler)


def send(
    handler: Any, api: ApiKind, method: str, path: str, headers: dict[str, str], body: bytes | str, b64: bool
) -> tuple[int, dict[str, Any]]:
    event = SHAPES[api].build(method, path, body=body, headers=headers)
    if b64:
        event["body"], event["isBase64Encoded"] = body, True
    result = handler(event, LambdaContext(function_name="digits"))
    return result["statusCode"], json.loads(result["body"])


def test_the_corpus_is_large_enough() -> None:
    assert len(corpus()) >= 100


@pytest.mark.parametrize("api", list(ApiKind))
def test_every_bad_request_gets_a_4xx_with_a_message(handlers: dict[ApiKind, Any], api: ApiKind) -> None:
    for method, path, headers, body, b64 in corpus():
        status, payload = send(handlers[api], api, method, path, headers, body, b64)
        where = (api.value, method, path, str(body)[:60])
        assert 400 <= status < 500, (where, status, payload)
        assert set(payload) == {"error", "code"}, where
        assert len(payload["error"]) >= 15 and "Traceback" not in payload["error"], where


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=40,
)
bodies = st.one_of(
    json_values.map(json.dumps),
    st.fixed_dictionaries({"inputs": json_values}).map(json.dumps),
    st.fixed_dictionaries({"inputs": st.lists(json_values, max_size=3)}).map(json.dumps),
    st.binary(max_size=200),
    st.text(max_size=200),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, path=st.sampled_from(["/predict", "/v2/models/digits/infer"]), api=st.sampled_from(list(ApiKind)))
def test_fuzzed_bodies_never_get_a_5xx(
    handlers: dict[ApiKind, Any], body: bytes | str, path: str, api: ApiKind
) -> None:
    status, payload = send(handlers[api], api, "POST", path, JSON, body, False)
    assert status < 500, payload
    if status >= 400:
        assert payload["error"] and payload["code"]
