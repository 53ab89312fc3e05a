"""Signature validation: what a request may send for each input, and what it is told otherwise."""

from __future__ import annotations

import numpy as np
import pytest

from handlers.errors import BadRequestError
from handlers.manifest import TensorSpec
from handlers.runtime import decode_inputs, to_array, top_k

X = TensorSpec("x", "float32", ("batch", 64))
IDS = TensorSpec("ids", "int64", ("batch", "seq"))
MASK = TensorSpec("mask", "int64", ("batch", "seq"))


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
        ({"a": 1}, "wrong_shape", "got dict"),
        (3.0, "wrong_shape", "got float"),
        ([], "wrong_shape", "must be shaped [batch, 64], got [0]"),
    ],
)
def test_bad_values_are_refused_with_the_reason(value: object, code: str, fragment: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        to_array(value, X)
    assert caught.value.code == code
    assert fragment in caught.value.message
    assert caught.value.status == 400


def test_integer_input_refuses_fractions_and_out_of_range() -> None:
    assert to_array([[1, 2.0]], IDS).dtype == np.int64
    with pytest.raises(BadRequestError, match="fractional"):
        to_array([[1, 2.5]], IDS)
    with pytest.raises(BadRequestError, match="outside the range"):
        to_array([[2**70]], IDS)


def test_named_inputs_must_match_and_share_the_batch_size() -> None:
    arrays = decode_inputs({"inputs": {"ids": [[1, 2]], "mask": [[1, 1]]}}, (IDS, MASK))
    assert sorted(arrays) == ["ids", "mask"]
    with pytest.raises(BadRequestError, match=r"missing \['mask'\]"):
        decode_inputs({"inputs": {"ids": [[1]]}}, (IDS, MASK))
    with pytest.raises(BadRequestError, match="object keyed by"):
        decode_inputs({"inputs": [[1]]}, (IDS, MASK))
    with pytest.raises(BadRequestError, match="dimension batch is 1 in input ids but 2 in input mask"):
        decode_inputs({"inputs": {"ids": [[1, 2]], "mask": [[1, 1], [1, 1]]}}, (IDS, MASK))


def test_body_must_be_an_object_with_inputs() -> None:
    for payload in ([1, 2], {"input": [[0.0] * 64]}, "x", None):
        with pytest.raises(BadRequestError, match='"inputs" field'):
            decode_inputs(payload, (X,))


def test_top_k_softmaxes_logits_and_orders_labels() -> None:
    scores = np.array([[0.0, 2.0, 1.0]], dtype=np.float32)
    [row] = top_k(scores, ("a", "b", "c"), k=2)
    assert row["label"] == "b"
    assert [entry["label"] for entry in row["top_k"]] == ["b", "c"]
    expected = np.exp(2.0) / np.exp([0.0, 2.0, 1.0]).sum()
    assert row["score"] == pytest.approx(expected, rel=1e-5)
