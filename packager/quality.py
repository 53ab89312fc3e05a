"""Quality metrics by task: accuracy against labels where the user has them, fidelity to fp32 otherwise.

Each metric is a small strategy over the model's named outputs. `pick_metric` chooses by what the
first output means: CTC text, class scores, a regression against float labels, a probability map
(IoU of the binarized mask), an embedding (cosine similarity), else relative error against fp32; a
`--metric file.py:function` of the user's own overrides them all.
"""

from __future__ import annotations

import importlib.util
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from handlers.manifest import TensorSpec
from handlers.tensors import Output, scores_matrix
from packager.errors import LambdafitError

Outputs = dict[str, Output]
EMBEDDING_NAMES = re.compile(r"embed|pool|sentence|vector|last_hidden_state|feature", re.IGNORECASE)
SEGMENTATION_NAMES = re.compile(r"seg|mask", re.IGNORECASE)
MAP_NAMES = re.compile(r"seg|mask|map|heat|sigmoid", re.IGNORECASE)
"""A [batch, H, W] output is a map only by name: [batch, N, K] is as often N rows of K (boxes, tokens)."""
MAP_THRESHOLD = 0.5
"""A probability map is binarized at 0.5 (a logit map, with values outside [0, 1], at 0)."""
MIN_MAP_SIDE = 8
REGRESSION_MAX_VALUES = 16
"""A float output with at most this many values per row and no class meaning is a regression."""


class Metric(ABC):
    kind: str
    """What the number means, as the report prints it."""

    @abstractmethod
    def score(self, outputs: Outputs, reference: Outputs) -> float:
        """Higher is better, 1.0 at best."""


class Accuracy(Metric):
    kind = "accuracy"

    def __init__(self, output: str, labels: np.ndarray, names: tuple[str, ...]) -> None:
        self.output, self.labels, self.names = output, labels, names

    def score(self, outputs: Outputs, reference: Outputs) -> float:
        scores, _ = scores_matrix(outputs[self.output], self.names)
        return float(np.mean(scores.argmax(axis=1) == self.labels))


class Top1Agreement(Metric):
    kind = "top-1 agreement with fp32"

    def __init__(self, output: str) -> None:
        self.output = output

    def score(self, outputs: Outputs, reference: Outputs) -> float:
        got, _ = scores_matrix(outputs[self.output], ())
        want, _ = scores_matrix(reference[self.output], ())
        return float(np.mean(got.argmax(axis=1) == want.argmax(axis=1)))


class Fidelity(Metric):
    """Float outputs: 1 - relative error against fp32; integer, string and map outputs: share equal."""

    kind = "1 - relative error against fp32"

    def score(self, outputs: Outputs, reference: Outputs) -> float:
        scores = []
        for name, want in reference.items():
            got = outputs[name]
            if isinstance(want, list) or isinstance(got, list):
                got_m, _ = scores_matrix(got, ())
                want_m, _ = scores_matrix(want, ())
                scores.append(_relative(got_m, want_m))
            elif want.dtype.kind == "f":
                scores.append(_relative(got, want))
            else:
                scores.append(float(np.mean(np.asarray(got) == np.asarray(want))))
        return float(min(scores))


def _relative(got: np.ndarray, want: np.ndarray) -> float:
    got64, want64 = got.astype(np.float64).ravel(), want.astype(np.float64).ravel()
    if got64.shape != want64.shape:
        return 0.0
    return 1.0 - float(np.linalg.norm(got64 - want64) / max(float(np.linalg.norm(want64)), 1e-12))


class CtcExactMatch(Metric):
    """Text recognizers with a CTC head (PaddleOCR convention: blank at 0, then the charset)."""

    def __init__(self, output: str, charset: Sequence[str], labels: np.ndarray | None) -> None:
        self.output = output
        self.table = ["", *charset]
        self.labels = labels
        self.kind = "exact match of decoded text" + ("" if labels is not None else " with fp32")

    def decode(self, probabilities: np.ndarray) -> list[str]:
        texts = []
        for row in probabilities.argmax(axis=-1):
            keep = np.ones(len(row), dtype=bool)
            keep[1:] = row[1:] != row[:-1]
            texts.append("".join(self.table[i] for i in row[keep] if 0 < i < len(self.table)))
        return texts

    def score(self, outputs: Outputs, reference: Outputs) -> float:
        got = self.decode(np.asarray(outputs[self.output]))
        want = (
            [str(label) for label in self.labels]
            if self.labels is not None
            else self.decode(np.asarray(reference[self.output]))
        )
        return float(np.mean([a == b for a, b in zip(got, want, strict=True)]))


class RSquared(Metric):
    """Regression: the coefficient of determination against float labels, or against fp32's outputs
    (relative error would call a 10% error on a large constant offset 99% right), floored at 0."""

    def __init__(self, output: str, labels: np.ndarray | None) -> None:
        self.output, self.labels = output, labels
        self.kind = "R² against " + ("labels" if labels is not None else "fp32")

    def score(self, outputs: Outputs, reference: Outputs) -> float:
        got = np.asarray(outputs[self.output], dtype=np.float64)
        want = np.asarray(reference[self.output] if self.labels is None else self.labels, dtype=np.float64)
        got, want = got.reshape(len(got), -1), want.reshape(len(want), -1)
        if got.shape != want.shape:
            return 0.0
        residual = float(np.sum((got - want) ** 2))
        total = float(np.sum((want - want.mean(axis=0)) ** 2))
        if total == 0.0:
            return 1.0 if residual == 0.0 else 0.0
        return max(0.0, 1.0 - residual / total)


class MaskIoU(Metric):
    """Detection and segmentation maps: intersection over union of the binarized masks, over every
    pixel of every row. A [batch, C, H, W] map with C > 1 is a class per pixel (argmax): the mean IoU
    over the classes fp32 finds. An int8 text detector whose masks agree on 99.8% of the pixels scores
    about that, where the relative error of the raw probabilities called it a 5-point drop."""

    kind = "IoU of the binarized map with fp32"

    def __init__(self, output: str) -> None:
        self.output = output

    def score(self, outputs: Outputs, reference: Outputs) -> float:
        got, want = np.asarray(outputs[self.output]), np.asarray(reference[self.output])
        if got.shape != want.shape:
            return 0.0
        if want.ndim == 4 and want.shape[1] > 1:
            got_class, want_class = got.argmax(axis=1), want.argmax(axis=1)
            return float(np.mean([_iou(got_class == c, want_class == c) for c in np.unique(want_class)]))
        threshold = MAP_THRESHOLD if float(want.min()) >= 0.0 and float(want.max()) <= 1.0 else 0.0
        return _iou(got > threshold, want > threshold)


def _iou(got: np.ndarray, want: np.ndarray) -> float:
    union = int(np.count_nonzero(got | want))
    return 1.0 if union == 0 else int(np.count_nonzero(got & want)) / union


class Cosine(Metric):
    """Embeddings: the mean cosine similarity of each row's vector (each token's, for [batch, seq, D])
    with fp32's, floored at 0."""

    kind = "cosine similarity with fp32"

    def __init__(self, output: str) -> None:
        self.output = output

    def score(self, outputs: Outputs, reference: Outputs) -> float:
        got = np.asarray(outputs[self.output], dtype=np.float64)
        want = np.asarray(reference[self.output], dtype=np.float64)
        if got.shape != want.shape:
            return 0.0
        got, want = got.reshape(-1, got.shape[-1]), want.reshape(-1, want.shape[-1])
        norms = np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1)
        same = np.where(norms > 0, np.sum(got * want, axis=1) / np.maximum(norms, 1e-300), 1.0)
        return max(0.0, float(np.mean(same)))


class UserMetric(Metric):
    """`--metric file.py:function`: function(outputs, reference) -> a float in [0, 1], higher is better,
    over dicts of the candidate's and fp32's outputs by name. Loaded again in each measuring process."""

    def __init__(self, spec: str) -> None:
        from packager.config import split_factory

        self.path, self.function = split_factory(spec, "--metric")
        self.kind = f"{self.function}() from {self.path.name}"
        self._call: Callable[[Outputs, Outputs], Any] | None = None

    def load(self) -> Callable[[Outputs, Outputs], Any]:
        if self._call is None:
            self._call = _load_function(self.path, self.function)
        return self._call

    def score(self, outputs: Outputs, reference: Outputs) -> float:
        try:
            value = float(self.load()(outputs, reference))
        except LambdafitError:
            raise
        except Exception as exc:
            raise LambdafitError(f"--metric {self.path}:{self.function} raised {type(exc).__name__}: {exc}") from exc
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise LambdafitError(
                f"--metric {self.path}:{self.function} returned {value}: return a float in [0, 1], higher is better"
            )
        return value


def _load_function(path: Path, name: str) -> Callable[[Outputs, Outputs], Any]:
    if not path.is_file():
        raise LambdafitError(f"--metric {path}:{name}: {path} does not exist")
    spec = importlib.util.spec_from_file_location(f"lambdafit_metric_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise LambdafitError(f"--metric {path}:{name}: cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise LambdafitError(f"--metric {path}:{name}: importing {path} raised {type(exc).__name__}: {exc}") from exc
    function = getattr(module, name, None)
    if not callable(function):
        raise LambdafitError(f"--metric {path}:{name}: {path} has no function {name}()")
    return function  # type: ignore[no-any-return]


def task_metric(spec: TensorSpec, value: Output) -> Metric | None:
    """The metric an output's meaning asks for (its shape, dtype and name), or None for plain fidelity."""
    if isinstance(value, list) or value.dtype.kind != "f" or spec.batch_axis != 0:
        return None
    named_map = value.ndim == 4 or MAP_NAMES.search(spec.name)
    if value.ndim in (3, 4) and min(value.shape[-2:]) >= MIN_MAP_SIDE and named_map:
        channels = value.shape[1] if value.ndim == 4 else 1
        probabilities = float(value.min()) >= 0.0 and float(value.max()) <= 1.0
        if (channels == 1 and probabilities) or (channels > 1 and SEGMENTATION_NAMES.search(spec.name)):
            return MaskIoU(spec.name)
    if value.ndim in (2, 3) and value.shape[-1] > REGRESSION_MAX_VALUES and EMBEDDING_NAMES.search(spec.name):
        return Cosine(spec.name)
    if value.ndim <= 2 and int(np.prod(value.shape[1:])) <= REGRESSION_MAX_VALUES:
        return RSquared(spec.name, None)
    return None


def pick_metric(
    reference: Outputs,
    outputs: tuple[TensorSpec, ...],
    *,
    classifier: str | None,
    label_indices: np.ndarray | None,
    label_names: tuple[str, ...],
    text_labels: np.ndarray | None,
    charset: Sequence[str] | None,
    float_labels: np.ndarray | None = None,
    user: str | None = None,
) -> Metric:
    if user is not None:
        return UserMetric(user)
    first = outputs[0].name
    value = reference[first]
    if (
        charset is not None
        and isinstance(value, np.ndarray)
        and value.ndim == 3
        and value.shape[-1] == len(charset) + 1
    ):
        return CtcExactMatch(first, charset, text_labels)  # scores per step: the blank, then each character
    if classifier is not None:
        if label_indices is not None:
            return Accuracy(classifier, label_indices, label_names)
        return Top1Agreement(classifier)
    if float_labels is not None:
        return RSquared(first, float_labels)
    return task_metric(outputs[0], value) or Fidelity()
