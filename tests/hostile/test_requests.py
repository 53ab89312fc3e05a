"""The hostile tier, request side (issue #10, classes 2-6 and 10): what a client can send to a bundle of
each kind, and what it must get back. Every answer is strict JSON; nothing a client sends is a 5xx."""

from __future__ import annotations

import base64
import gc
import io
import json
import math
import resource
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from handlers.manifest import Manifest
from tests.hostile.conftest import Call

ROW = [0.5] * 64
V2 = "/v2/models/{}/infer"


def png(width: int, height: int, mode: str = "L", fmt: str = "PNG", value: int = 128) -> str:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), value).save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode()


def huge_png_header(width: int, height: int) -> str:
    """A tiny PNG file whose header claims a huge image (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    raw = (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")
    )
    return base64.b64encode(raw).decode()


def manifest_of(bundles: dict[str, Path], kind: str) -> Manifest:
    return Manifest.load(bundles[kind] / "function" / "model")


# Class 3: numbers and shapes that JSON and the Open Inference Protocol allow.
TENSOR_CASES: list[tuple[Any, int, str]] = [
    ({"inputs": [[1e308] * 64]}, 400, "wrong_dtype"),
    ({"inputs": [[-1e308] * 64]}, 400, "wrong_dtype"),
    ({"inputs": [[2**63] * 64]}, 200, ""),
    ({"inputs": [[2**1000] * 64]}, 400, "wrong_dtype"),
    ({"inputs": [[-(2**1000)] * 64]}, 400, "wrong_dtype"),
    ({"inputs": [[5e-324] * 64]}, 200, ""),
    ({"inputs": [[-0.0] * 64]}, 200, ""),
    ({"inputs": [[0] * 64]}, 200, ""),
    ({"inputs": [[1] * 32 + [0.5] * 32]}, 200, ""),
    ({"inputs": [[[0.5]] * 64]}, 400, "wrong_shape"),
    ({"inputs": [ROW] * 3 + [ROW[:1]]}, 400, "wrong_shape"),
    ({"inputs": [[ROW]]}, 400, "wrong_shape"),
    ({"inputs": [[True] * 64]}, 400, "wrong_dtype"),
    ({"inputs": [["0.5"] * 64]}, 400, "wrong_dtype"),
    ({"inputs": [[None] * 64]}, 400, "wrong_dtype"),
    ({"inputs": [[{}] * 64]}, 400, "wrong_dtype"),
    ({"inputs": [[[]] * 64]}, 400, "wrong_shape"),
    ({"inputs": {"x": ROW}}, 400, "wrong_shape"),
    ({"inputs": {"x": [ROW], "y": [ROW]}}, 400, "wrong_inputs"),
    ({"inputs": []}, 400, "wrong_shape"),
    ({"inputs": [[]]}, 400, "wrong_shape"),
]
V2_SHAPES: list[tuple[Any, str]] = [
    ([2**62, 64], "too large"),
    ([2**31, 2**31], "too large"),
    ([10**30, 64], "too large"),
    ([0, 64], "empty"),
    ([1, 64, 1], "shape"),
    ([-1, 64], "non-negative"),
    ([True, 64], "non-negative"),
    ([1.0, 64], "non-negative"),
    (["1", 64], "non-negative"),
    ([None, 64], "non-negative"),
    ([], "needs"),
    ([64], "shape"),
    ("64", "non-negative"),
]


@pytest.mark.parametrize(("body", "status", "code"), TENSOR_CASES)
def test_numbers_and_shapes_json_allows(call: Call, body: Any, status: int, code: str) -> None:
    got, payload, _ = call("tensor", body)
    assert got == status, payload
    if code:
        assert payload["code"] == code and len(payload["error"]) > 15


@pytest.mark.parametrize(("shape", "fragment"), V2_SHAPES)
def test_v2_shapes_are_checked_before_anything_is_allocated(call: Call, shape: Any, fragment: str) -> None:
    tensor = {"name": "x", "shape": shape, "datatype": "FP32", "data": ROW}
    got, payload, _ = call("tensor", {"inputs": [tensor]}, V2.format("digits"))
    assert 400 <= got < 500, payload
    assert payload["code"] in ("wrong_shape", "bad_request") or "limit" in payload["error"], payload


@pytest.mark.parametrize(
    "datatype", ["FP16", "FP64", "INT8", "INT64", "UINT8", "UINT64", "BOOL", "BYTES", "BF16", "", None, 7]
)
def test_v2_datatypes_other_than_the_models(call: Call, datatype: Any) -> None:
    tensor = {"name": "x", "shape": [1, 64], "datatype": datatype, "data": ROW}
    got, payload, _ = call("tensor", {"inputs": [tensor]}, V2.format("digits"))
    assert got == 400 and payload["code"] == "wrong_dtype", payload


@pytest.mark.parametrize("ids", [[64], [1000], [2**40], [-1], [-64], [63, 64], [-(2**40)]])
def test_token_ids_outside_the_vocabulary_are_refused_not_wrapped(
    call: Call, hostile_bundles: dict[str, Path], ids: list[int]
) -> None:
    assert manifest_of(hostile_bundles, "text").inputs[0].value_range == (0, 63)
    row = (ids + [0] * 16)[:16]
    got, payload, _ = call("text", {"inputs": [row]})
    assert (got, payload["code"]) == (422, "out_of_range"), payload
    assert "[0, 63]" in payload["error"]
    got, payload, _ = call("text", {"inputs": [[5] * 16]})
    assert got == 200, payload


# Class 2: one request must not exhaust the function.
def test_more_rows_than_the_function_can_hold_are_refused_before_running(
    call: Call, hostile_bundles: dict[str, Path]
) -> None:
    limits = manifest_of(hostile_bundles, "wide").limits
    assert limits.max_rows is not None and limits.max_rows < 1000 and "response" in limits.basis
    got, payload, _ = call("wide", {"inputs": [[0.5] * 4] * (limits.max_rows + 1)})
    assert (got, payload["code"]) == (413, "too_many_rows"), payload
    assert str(limits.max_rows) in payload["error"]
    got, payload, raw = call("wide", {"inputs": [[0.5] * 4] * limits.max_rows})
    assert got == 200 and len(raw) < 6 * 1024 * 1024


@pytest.mark.parametrize("rows", [1, 10, 1000])
def test_rows_within_the_limit_are_served(call: Call, rows: int) -> None:
    got, payload, _ = call("tensor", {"inputs": [ROW] * rows})
    assert got == 200 and len(payload["predictions"]) == rows


def test_a_text_of_five_megabytes_is_cut_before_it_is_tokenized(call: Call) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    got, payload, _ = call("text", {"text": "the model " * 500_000})
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert got == 200, payload
    assert grown_mb < 200, f"tokenizing grew the process by {grown_mb:.0f} MB"


@pytest.mark.parametrize(("width", "height"), [(50_000, 50_000), (100_000, 1_000), (65_000, 65_000), (20_000, 3_000)])
def test_images_whose_headers_claim_too_many_pixels_are_refused_before_decoding(
    call: Call, width: int, height: int
) -> None:
    got, payload, _ = call("image", {"image": huge_png_header(width, height)})
    assert (got, payload["code"]) == (413, "image_too_large"), payload


def test_many_large_images_are_refused_by_their_total(call: Call, hostile_bundles: dict[str, Path]) -> None:
    limit = manifest_of(hostile_bundles, "image").limits.max_pixels
    side = int(math.sqrt(limit / 3)) + 1
    image = png(side, side)
    got, payload, _ = call("image", {"images": [image] * 4})
    assert (got, payload["code"]) == (413, "image_too_large"), payload


@pytest.mark.parametrize("count", [65, 200])
def test_too_many_images_or_texts(call: Call, count: int) -> None:
    got, payload, _ = call("image", {"images": [png(8, 8)] * count})
    assert (got, payload["code"]) == (413, "too_many_rows")
    got, payload, _ = call("text", {"texts": ["the model"] * count})
    assert (got, payload["code"]) == (413, "too_many_rows")


# Class 4: responses are what they claim.
@pytest.mark.parametrize("value", [1.0, 5.0, 100.0])
def test_overflowing_outputs_are_null_with_a_warning_and_no_made_up_label(call: Call, value: float) -> None:
    got, payload, raw = call("overflow", {"inputs": [[value, 0.0, -value]]})  # `call` parses strictly
    assert got == 200 and ":NaN" not in raw and "Infinity" not in raw
    assert payload["outputs"]["logits"][0][0] is None and "not finite" in payload["warnings"][0]
    [prediction] = payload["predictions"]
    assert prediction == {"label": None, "score": None, "top_k": []}
    got, payload, raw = call("overflow", {"inputs": [[0.0, 0.0, 0.0]]})
    assert got == 200 and "warnings" not in payload


def test_v2_answers_with_overflow_are_strict_json(call: Call) -> None:
    tensor = {"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [9.0, 0.0, 0.0]}
    got, payload, _ = call("overflow", {"inputs": [tensor]}, V2.format("overflow"))
    assert got == 200 and payload["outputs"][0]["data"][0] is None and payload["parameters"]["warnings"]


def test_the_six_megabyte_check_counts_the_escaped_envelope() -> None:
    from handlers.app import MAX_BODY_BYTES, json_response
    from handlers.errors import PayloadTooLargeError

    quotes = {"labels": ["a"] * (MAX_BODY_BYTES // 5)}  # each element is `"a",`: 4 bytes, 6 once escaped
    text = json.dumps(quotes, separators=(",", ":"))
    assert len(text) < MAX_BODY_BYTES < len(json.dumps({"body": text}))
    with pytest.raises(PayloadTooLargeError):
        json_response(quotes)


# Class 5: nothing keyed by client input grows.
def test_distinct_requests_do_not_grow_the_warm_process(call: Call) -> None:
    def burst(offset: int) -> None:
        for i in range(offset, offset + 1500):
            call("tensor", {"inputs": [ROW]}, f"/v2/models/m{i}/versions/v{i}/infer")
            call("tensor", "", f"/nope/{i}?q={i}", {"Content-Type": f"application/x-{i}", f"x-h{i}": str(i)})
            call("tensor", {"inputs": {f"k{i}": [ROW]}})

    burst(0)
    gc.collect()
    objects = len(gc.get_objects())
    burst(10_000)
    gc.collect()
    assert len(gc.get_objects()) - objects < 500, "objects kept per distinct request"


# Class 6 (handler half): failures the deployment can see.
def test_a_5xx_is_counted_by_function_version(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, digits_bundle: Path, tmp_path: Path
) -> None:
    import shutil

    from handlers.events import RestEvent
    from packager.emulator import LambdaContext
    from tests.conftest import handler_for

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    model_dir = tmp_path / "model"
    shutil.copytree(digits_bundle / "function" / "model", model_dir)
    (model_dir / "model.onnx").write_bytes(b"corrupt")
    handler = handler_for(model_dir)
    event = RestEvent.build(
        "POST", "/predict", body=json.dumps({"inputs": [ROW]}), headers={"Content-Type": "application/json"}
    )
    assert handler(event, LambdaContext(function_name="digits", function_version="12"))["statusCode"] == 503
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    server = [line for line in lines if "ServerErrors" in line]
    assert server and server[0]["FunctionVersion"] == "12" and server[0]["ServerErrors"] == 1  # EMF: a number
    assert server[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service", "FunctionVersion"]]


# Class 10: inputs people really send.
def test_multi_frame_jpegs_from_phone_cameras_are_read(call: Call) -> None:
    first, second = Image.new("L", (8, 8), 200), Image.new("L", (8, 8), 10)
    buffer = io.BytesIO()
    first.save(buffer, format="MPO", save_all=True, append_images=[second])
    assert Image.open(io.BytesIO(buffer.getvalue())).format == "MPO"
    got, mpo, _ = call("image", {"image": base64.b64encode(buffer.getvalue()).decode()})
    got_jpeg, jpeg, _ = call("image", {"image": png(8, 8, fmt="JPEG", value=200)})
    assert got == got_jpeg == 200
    np.testing.assert_allclose(mpo["outputs"]["logits"], jpeg["outputs"]["logits"], atol=1e-3)


def test_sixteen_bit_pngs_are_scaled_not_clipped(call: Call) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8), 32896, dtype=np.uint16)).save(buffer, format="PNG")
    got, deep, _ = call("image", {"image": base64.b64encode(buffer.getvalue()).decode()})
    got8, shallow, _ = call("image", {"image": png(8, 8, value=128)})
    assert got == got8 == 200
    np.testing.assert_allclose(deep["outputs"]["logits"], shallow["outputs"]["logits"], atol=1e-4)


@pytest.mark.parametrize(
    "event",
    [{}, [], "x", None, {"Records": [{"eventSource": "aws:sqs", "body": "{}"}]}, {"version": "2.0"},
     {"httpMethod": "POST"}, {"httpMethod": "POST", "path": "/predict", "body": {"inputs": [ROW]}},
     {"httpMethod": 7, "path": "/predict"}, {"requestContext": {"http": {"method": "GET"}}, "version": "2.0", "rawPath": 5}],
)  # fmt: skip
def test_events_that_are_not_http_events_get_a_clear_400(digits_bundle: Path, event: Any) -> None:
    from packager.emulator import LambdaContext
    from tests.conftest import handler_for

    result = handler_for(digits_bundle / "function" / "model")(event, LambdaContext(function_name="digits"))
    body = json.loads(result["body"])
    assert result["statusCode"] == 400 and body["code"] in ("bad_event", "wrong_shape", "bad_request"), body


# Hypothesis: extreme values of every kind, every dtype, deep and wide JSON, all bundle kinds.
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e308, -1e308, 5e-324, 65504.0, 65520.0, 3.4e38, 3.5e38, 2**53 + 1, -0.0]),
)
leaves = st.one_of(numbers, st.booleans(), st.none(), st.text(max_size=4))
values = st.recursive(
    leaves, lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=4), c, max_size=3), max_leaves=50
)
shapes = st.lists(st.one_of(st.integers(-3, 2**63), st.just(0), st.booleans()), max_size=5)
tensors = st.fixed_dictionaries(
    {"name": st.sampled_from(["x", "input_ids", "audio", "state", "rate", "?"]), "shape": shapes,
     "datatype": st.sampled_from(["FP32", "FP16", "FP64", "INT64", "INT32", "UINT8", "BOOL", "BYTES"]),
     "data": st.lists(numbers, max_size=20)}
)  # fmt: skip
KINDS = ["tensor", "text", "vad", "overflow", "wide", "image"]


@settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(kind=st.sampled_from(KINDS), body=st.one_of(values, st.fixed_dictionaries({"inputs": values}),
       st.fixed_dictionaries({"inputs": st.lists(tensors, max_size=3)})), v2=st.booleans())  # fmt: skip
def test_fuzzed_requests_never_get_a_5xx_and_always_strict_json(call: Call, kind: str, body: Any, v2: bool) -> None:
    path = V2.format(kind if kind != "tensor" else "digits") if v2 else "/predict"
    got, payload, _ = call(kind, body, path)
    assert got < 500, payload
    if got >= 400:
        assert payload["code"] and len(payload["error"]) > 10
