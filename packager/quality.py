"""Quality metrics: accuracy against labels where the user has them, fidelity to fp32 otherwise.

Each metric is a small strategy; `pick_metric` chooses from the model's outputs and the labels.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np


class Metric(ABC):
    kind: str
    """What the number means, as the report prints it."""

    @abstractmethod
    def score(self, outputs: list[np.ndarray], reference: list[np.ndarray], labels: np.ndarray | None) -> float:
        """Higher is better, 1.0 at best."""


class Accuracy(Metric):
    kind = "accuracy"

    def score(self, outputs: list[np.ndarray], reference: list[np.ndarray], labels: np.ndarray | None) -> float:
        assert labels is not None
        return float(np.mean(outputs[0].argmax(axis=1) == labels))


class Top1Agreement(Metric):
    kind = "top-1 agreement with fp32"

    def score(self, outputs: list[np.ndarray], reference: list[np.ndarray], labels: np.ndarray | None) -> float:
        return float(np.mean(outputs[0].argmax(axis=-1) == reference[0].argmax(axis=-1)))


class RelativeError(Metric):
    kind = "1 - relative error against fp32"

    def score(self, outputs: list[np.ndarray], reference: list[np.ndarray], labels: np.ndarray | None) -> float:
        errors = []
        for got, want in zip(outputs, reference, strict=True):
            got64, want64 = got.astype(np.float64).ravel(), want.astype(np.float64).ravel()
            errors.append(np.linalg.norm(got64 - want64) / max(float(np.linalg.norm(want64)), 1e-12))
        return float(1.0 - max(errors))


class CtcExactMatch(Metric):
    """Text recognizers with a CTC head (PaddleOCR convention: blank at 0, then the charset)."""

    def __init__(self, charset: Sequence[str], against_labels: bool) -> None:
        self.table = ["", *charset]
        self.against_labels = against_labels
        self.kind = "exact match of decoded text" + ("" if against_labels else " with fp32")

    def decode(self, probabilities: np.ndarray) -> list[str]:
        texts = []
        for row in probabilities.argmax(axis=-1):
            keep = np.ones(len(row), dtype=bool)
            keep[1:] = row[1:] != row[:-1]
            texts.append("".join(self.table[i] for i in row[keep] if 0 < i < len(self.table)))
        return texts

    def score(self, outputs: list[np.ndarray], reference: list[np.ndarray], labels: np.ndarray | None) -> float:
        got = self.decode(outputs[0])
        want = (
            [str(label) for label in labels]
            if self.against_labels and labels is not None
            else self.decode(reference[0])
        )
        return float(np.mean([a == b for a, b in zip(got, want, strict=True)]))


def pick_metric(reference: list[np.ndarray], labels: np.ndarray | None, charset: Sequence[str] | None) -> Metric:
    first = reference[0]
    if charset is not None and first.ndim == 3:
        return CtcExactMatch(charset, against_labels=labels is not None and labels.dtype.kind in "US")
    classifier = first.ndim == 2 and first.shape[1] > 1 and first.dtype.kind == "f"
    if classifier and labels is not None and labels.dtype.kind in "iu" and labels.ndim == 1:
        return Accuracy()
    if classifier:
        return Top1Agreement()
    return RelativeError()


def is_classifier(metric: Metric) -> bool:
    return isinstance(metric, Accuracy | Top1Agreement)
