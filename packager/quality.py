"""Quality metrics: accuracy against labels where the user has them, fidelity to fp32 otherwise.

Each metric is a small strategy over the model's named outputs; `pick_metric` chooses from the
outputs, the classifier output (if any) and the labels.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from handlers.manifest import TensorSpec
from handlers.tensors import Output, scores_matrix

Outputs = dict[str, Output]


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


def pick_metric(
    reference: Outputs,
    outputs: tuple[TensorSpec, ...],
    *,
    classifier: str | None,
    label_indices: np.ndarray | None,
    label_names: tuple[str, ...],
    text_labels: np.ndarray | None,
    charset: Sequence[str] | None,
) -> Metric:
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
    return Fidelity()
