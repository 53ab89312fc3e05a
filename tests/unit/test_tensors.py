"""Signature validation: what a request may send for each input, and what it is told otherwise; how
fixed-batch graphs are fed, and outputs turned into JSON."""

from __future__ import annotations

import numpy as np
import pytest

from handlers.errors import BadRequestError
from handlers.manifest import DimBounds, Manifest, RequestLimits, TensorSpec
from handlers.runtime import ModelRuntime
from handlers.tensors import FloatInput, decode_inputs, to_array, to_json, top_k

X = TensorSpec("x", "float32", ("batch", 64))
IDS = TensorSpec("ids", "int64", ("batch", "seq"))
MASK = TensorSpec("mask", "int64", ("batch", "seq"))
LOGITS = TensorSpec("logits", "float32", ("batch", 3))


def manifest(inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...] = (LOGITS,), **kw: object) -> Manifest:
    return Manifest(name="m", version="v", sha256="0", inputs=inputs, outputs=outputs, **kw)  # type: ignore[arg-type]


def array(value: object, spec: TensorSpec) -> np.ndarray:
    """`value` sent as the only input of a model that takes `spec`."""
    return decode_inputs({"inputs": value}, manifest((spec,)))[spec.name]


def test_float_input_converts_ints_and_floats() -> None:
    array = to_array([[1, 2.5] + [0] * 62], X)
    assert array.dtype == np.float32
    assert array.shape == (1, 64)
    assert array[0, 1] == 2.5


@pytest.mark.parametrize(
    ("value", "code", "fragment"),
    [
        ([[0.0] * 63], "wrong_shape", "axis 1 is 63, expected 64"),
        ([0.0] * 64, "wrong_shape", "wrap a single example in a list"),
        ([[0.0] * 64, [0.0] * 3], "wrong_shape", "ragged"),
        ([["a"] * 64], "wrong_dtype", "strings"),
        ([[True] * 64], "wrong_dtype", "not true/false"),
        ([[None] * 64], "wrong_dtype", "objects or nulls"),
        ([[1e39] * 64], "wrong_dtype", "too large for float32"),
        ({"a": 1}, "wrong_inputs", "unknown ['a']"),
        ({"x": {"a": 1}}, "wrong_shape", "got dict"),
        (3.0, "wrong_shape", "got float"),
        ([], "wrong_shape", "must be shaped [batch, 64], got [0]"),
    ],
)
def test_bad_values_are_refused_with_the_reason(value: object, code: str, fragment: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        array(value, X)
    assert caught.value.code == code
    assert fragment in caught.value.message
    assert caught.value.status == 400


def test_integer_input_refuses_fractions_and_out_of_range() -> None:
    assert array([[1, 2.0]], IDS).dtype == np.int64
    with pytest.raises(BadRequestError, match="fractional"):
        array([[1, 2.5]], IDS)
    with pytest.raises(BadRequestError, match="outside the range"):
        array([[2**70]], IDS)


def test_named_inputs_must_match_and_share_the_batch_size() -> None:
    both = manifest((IDS, MASK))
    arrays = decode_inputs({"inputs": {"ids": [[1, 2]], "mask": [[1, 1]]}}, both)
    assert sorted(arrays) == ["ids", "mask"]
    with pytest.raises(BadRequestError, match=r"missing \['mask'\]"):
        decode_inputs({"inputs": {"ids": [[1]]}}, both)
    with pytest.raises(BadRequestError, match="object keyed by"):
        decode_inputs({"inputs": [[1]]}, both)
    with pytest.raises(BadRequestError, match="input ids has 1 rows but input mask has 2"):
        decode_inputs({"inputs": {"ids": [[1, 2]], "mask": [[1, 1], [1, 1]]}}, both)
    with pytest.raises(BadRequestError, match="dimension seq is 2 in input ids but 3 in input mask"):
        decode_inputs({"inputs": {"ids": [[1, 2]], "mask": [[1, 1, 1]]}}, both)


def test_body_must_be_an_object_with_inputs() -> None:
    for payload in ([1, 2], {"input": [[0.0] * 64]}, "x", None):
        with pytest.raises(BadRequestError, match='"inputs" field'):
            decode_inputs(payload, manifest((X,)))


def test_top_k_softmaxes_logits_and_orders_labels() -> None:
    scores = np.array([[0.0, 2.0, 1.0]], dtype=np.float32)
    [row] = top_k(scores, ("a", "b", "c"), k=2)
    assert row["label"] == "b"
    assert [entry["label"] for entry in row["top_k"]] == ["b", "c"]
    expected = np.exp(2.0) / np.exp([0.0, 2.0, 1.0]).sum()
    assert row["score"] == pytest.approx(expected, rel=1e-5)


STATE = TensorSpec("state", "float32", (2, "batch", 4), batch_axis=1)
SR = TensorSpec("sr", "int64", (), batch_axis=None, default=16000)
AUDIO = TensorSpec("audio", "float32", ("batch", "samples"))


def test_scalars_have_defaults_and_states_carry_rows_on_their_own_axis() -> None:
    vad = manifest((AUDIO, STATE, SR), dims={"samples": DimBounds(2, 1024)})
    arrays = decode_inputs({"inputs": {"audio": [[0.0] * 8] * 3, "state": [[[0.0] * 4] * 3] * 2}}, vad)
    assert arrays["sr"].shape == () and int(arrays["sr"]) == 16000
    assert arrays["state"].shape == (2, 3, 4)
    arrays = decode_inputs({"inputs": {"audio": [[0.0] * 8], "state": [[[0.0] * 4]] * 2, "sr": 8000}}, vad)
    assert int(arrays["sr"]) == 8000
    with pytest.raises(BadRequestError, match="input audio has 3 rows but input state has 1"):
        decode_inputs({"inputs": {"audio": [[0.0] * 8] * 3, "state": [[[0.0] * 4]] * 2}}, vad)
    with pytest.raises(BadRequestError, match="input sr is a single value"):
        decode_inputs({"inputs": {"audio": [[0.0] * 8], "state": [[[0.0] * 4]] * 2, "sr": [8000]}}, vad)
    with pytest.raises(BadRequestError, match=r"dimension samples \(axis 1\) is 2000; this model takes 2..1024"):
        decode_inputs({"inputs": {"audio": [[0.0] * 2000], "state": [[[0.0] * 4]] * 2}}, vad)


def test_strings_are_strings() -> None:
    text = TensorSpec("text", "string", ("batch", 1))
    assert to_array([["good film"], ["awful"]], text).dtype == object
    with pytest.raises(BadRequestError, match="must hold strings"):
        to_array([["good"], [3]], text)


class Session:
    """Stands in for onnxruntime: a graph fixed at 2 rows that adds its row index to the input."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def run(self, names: list[str], feed: dict[str, np.ndarray]) -> list[object]:
        x = feed["x"]
        assert x.shape == (2, 3), "the graph takes exactly 2 rows"
        self.calls.append(len(x))
        return [x * 10, [{"a": float(v)} for v in x[:, 0]]]


def test_a_fixed_batch_graph_serves_any_number_of_rows_in_chunks() -> None:
    fixed = manifest(
        (TensorSpec("x", "float32", (2, 3)),),
        (TensorSpec("y", "float32", (2, 3)), TensorSpec("p", "seq(map(string,float32))", ("batch",))),
    )
    session = Session()
    runtime = ModelRuntime(manifest=fixed, session=session)  # type: ignore[arg-type]
    x = np.arange(15, dtype=np.float32).reshape(5, 3)
    out = runtime.run(decode_inputs({"inputs": x.tolist()}, fixed))
    assert session.calls == [2, 2, 2]
    np.testing.assert_array_equal(out["y"], x * 10)
    assert to_json(out["p"]) == ([{"a": float(v)} for v in x[:, 0]], 0)


def test_a_fixed_batch_graph_with_an_unbatched_output_takes_only_its_batch() -> None:
    fixed = manifest((TensorSpec("x", "float32", (2, 3)),), (TensorSpec("total", "float32", (), batch_axis=None),))
    with pytest.raises(BadRequestError, match="takes exactly 2 rows per request, got 5"):
        decode_inputs({"inputs": [[0.0] * 3] * 5}, fixed)


def test_zipmap_probabilities_give_predictions_by_class_name() -> None:
    [row] = top_k([{"setosa": 0.1, "versicolor": 0.7, "virginica": 0.2}], (), k=2)
    assert row["label"] == "versicolor" and [e["label"] for e in row["top_k"]] == ["versicolor", "virginica"]


def test_compact_floats_read_back_as_the_same_float32_in_fewer_bytes() -> None:
    import json

    values = np.random.default_rng(0).standard_normal((4, 50)).astype(np.float32)
    plain, compact = json.dumps(to_json(values)[0]), json.dumps(to_json(values, compact=True)[0])
    assert len(compact) < 0.7 * len(plain)
    assert np.array_equal(np.array(json.loads(compact), dtype=np.float32), values)
    halves = values.astype(np.float16)
    assert np.array_equal(np.array(to_json(halves, compact=True)[0], dtype=np.float16), halves)
    assert to_json(np.arange(3), compact=True) == ([0, 1, 2], 0)
    overflow = np.array([1.5, np.inf, np.nan], dtype=np.float32)
    assert to_json(overflow, compact=True) == ([1.5, None, None], 2)


def _decoded(decode: object, payload: object) -> dict[str, np.ndarray] | str:
    """What a decoder makes of a payload: its arrays, or the code of the error it raises."""
    try:
        return decode(payload)  # type: ignore[operator,no-any-return]
    except BadRequestError as error:
        return error.code
    except Exception as error:  # the other ServiceErrors (413, 422)
        return type(error).__name__


SHORT_WAY_MANIFESTS = {
    "rows of 64": manifest((X,)),
    "at most 3 rows": manifest((X,), limits=RequestLimits(max_rows=3)),
    "bounded sequence": manifest((TensorSpec("a", "float32", ("batch", "n", 2)),), dims={"n": DimBounds(2, 4)}),
    "float16": manifest((TensorSpec("h", "float16", ("batch", 2)),)),
    "float64, rows on axis 1": manifest((TensorSpec("d", "float64", (3, "batch"), batch_axis=1),)),
    "given once": manifest((TensorSpec("g", "float32", (2,), batch_axis=None),)),
}
SHORT_WAY_PAYLOADS = [
    {"inputs": [[0.5] * 64]},
    {"inputs": [[0.25] * 64] * 3},
    {"inputs": [[0.5] * 64] * 4},
    {"inputs": [[1, 2.5] + [0] * 62]},
    {"inputs": [[1] * 64]},
    {"inputs": [[True, 0.5] + [0.0] * 62]},
    {"inputs": [[None] + [0.5] * 63]},
    {"inputs": [["1.5"] + [0.5] * 63]},
    {"inputs": [[1e39] + [0.5] * 63]},
    {"inputs": [[3e38] * 64] * 2},
    {"inputs": [[0.5] * 63]},
    {"inputs": [[0.5] * 64, [0.5] * 3]},
    {"inputs": []},
    {"inputs": [[]]},
    {"inputs": [0.5] * 64},
    {"inputs": {"x": [[0.5] * 64]}},
    {"inputs": [[0.5] * 64], "extra": 1},
    {"input": [[0.5] * 64]},
    {"inputs": [[[0.5, 0.5]] * 3]},
    {"inputs": [[[0.5, 0.5]] * 5]},
    {"inputs": [[[0.5, 0.5]]]},
    {"inputs": [[0.5, 70000.0]]},
    {"inputs": [[0.5, 1.5]] * 2},
    {"inputs": [[0.5, 1.5], [0.5, 1.5], [0.5, 1.5]]},
    {"inputs": [[0.5], [1.5], [2.5]]},
    {"inputs": [0.5, 1.5]},
    {"inputs": [0.5, 1.5, 2.5]},
    [[0.5] * 64],
    None,
]


@pytest.mark.parametrize("name", sorted(SHORT_WAY_MANIFESTS))
def test_the_short_way_in_answers_as_the_checks_do_or_leaves_it_to_them(name: str) -> None:
    """`FloatInput` takes the common request in a few steps: whatever it takes must decode exactly as
    `decode_inputs` decodes it, and whatever `decode_inputs` refuses it must leave to it (None)."""
    shown = SHORT_WAY_MANIFESTS[name]
    short = FloatInput.of(shown)
    assert short is not None
    taken = 0
    for payload in SHORT_WAY_PAYLOADS:
        full = _decoded(lambda p: decode_inputs(p, shown), payload)
        quick = short.decode(payload)
        if quick is None:
            continue
        taken += 1
        assert isinstance(full, dict), (payload, full)
        assert quick.keys() == full.keys()
        for key, value in quick.items():
            assert value.dtype == full[key].dtype and value.shape == full[key].shape
            assert np.array_equal(value, full[key])
    assert taken >= 1, "the short way took none of the valid requests"


def test_the_short_way_is_only_for_one_float_input_fed_as_sent() -> None:
    assert FloatInput.of(manifest((IDS,))) is None
    assert FloatInput.of(manifest((IDS, MASK))) is None
    assert FloatInput.of(manifest((TensorSpec("x", "float32", (2, 3)),))) is None  # a fixed batch: fed in chunks
    assert FloatInput.of(manifest((TensorSpec("x", "float32", ("batch", "n", "n")),))) is None  # n must agree
    assert FloatInput.of(manifest((TensorSpec("x", "float32", (), batch_axis=None, default=1.0),))) is None
