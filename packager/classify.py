"""Is the model a classifier, which output holds its class scores, and what are the classes called?

A classifier output is a ZipMap (a sequence of label -> probability maps) or a float tensor shaped
[batch, classes] named like scores (logits, probabilities, ...), or named with `--classifier-output`.
Class names come from `--labels`, else from the model itself (a factory's `labels`, a checkpoint's
id2label, an estimator's classes_), else from ONNX metadata; a count that does not match is an error.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

import numpy as np

from handlers.manifest import TensorSpec
from handlers.tensors import Output
from packager.errors import ModelLoadError

SCORE_NAMES = re.compile(r"prob|logit|score|softmax|class|pred|label", re.IGNORECASE)
METADATA_KEYS = ("labels", "classes", "class_names", "names", "id2label")


def class_count(spec: TensorSpec, value: Output) -> int | None:
    """Classes in a [batch, classes] (or [batch, classes, 1, 1]) float output or a ZipMap, else None."""
    if isinstance(value, list):
        return len(value[0]) if value and isinstance(value[0], dict) else None
    if spec.batch_axis != 0 or value.dtype.kind != "f" or value.ndim < 2:
        return None
    if len(spec.shape) > 1 and isinstance(spec.shape[1], str):
        return None  # an axis that varies with the input (QA's start_logits over the sequence), not classes
    if any(size != 1 for size in value.shape[2:]):
        return None
    return int(value.shape[1]) if value.shape[1] > 1 else None


def find_classifier(
    outputs: tuple[TensorSpec, ...], reference: dict[str, Output], override: str | None, labels_known: int | None
) -> str | None:
    """The output holding class scores, or None when the model does not look like a classifier."""
    names = [spec.name for spec in outputs]
    if override is not None:
        if override not in names:
            raise ModelLoadError(
                f"--classifier-output {override!r} is not an output of the model; its outputs are {names}"
            )
        spec = outputs[names.index(override)]
        if class_count(spec, reference[override]) is None:
            raise ModelLoadError(
                f"--classifier-output {override}: the output is {spec.describe()}, not class scores shaped [batch, classes]"
            )
        return override
    candidates = [spec for spec in outputs if class_count(spec, reference[spec.name]) is not None]
    maps = [spec for spec in candidates if not spec.is_tensor]
    if maps:
        return maps[0].name
    named = [spec for spec in candidates if SCORE_NAMES.search(spec.name)]
    if named:
        return named[0].name
    counted = [spec for spec in candidates if labels_known == class_count(spec, reference[spec.name])]
    return counted[0].name if len(counted) == 1 else None


def metadata_labels(metadata: dict[str, str]) -> tuple[str, ...]:
    """Class names stored in ONNX metadata: a JSON list or {index: name} map, a Python dict literal
    (as Ultralytics writes them), or names separated by commas or newlines."""
    for key in METADATA_KEYS:
        text = metadata.get(key)
        if not text:
            continue
        value: Any
        try:
            value = json.loads(text)
        except ValueError:
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                value = [part.strip() for part in re.split(r"[\n,]", text) if part.strip()]
        if isinstance(value, dict):
            try:
                return tuple(str(value[k]) for k in sorted(value, key=lambda k: int(k)))
            except (TypeError, ValueError):
                continue
        if isinstance(value, list | tuple):
            return tuple(str(v) for v in value)
    return ()


def class_labels(
    count: int, *, given: tuple[str, ...], model: tuple[str, ...], metadata: tuple[str, ...], output: str
) -> tuple[str, ...]:
    for source, labels in (("--labels", given), ("the model's own labels", model), ("the ONNX metadata", metadata)):
        if not labels:
            continue
        if len(labels) != count:
            raise ModelLoadError(
                f"{source} name {len(labels)} classes but output {output} scores {count}: "
                + (
                    "give one label per class, in the model's order"
                    if source == "--labels"
                    else "pass --labels with one name per class"
                )
            )
        return labels
    return ()


def label_indices(labels: np.ndarray, names: tuple[str, ...], source: str, classes: int | None = None) -> np.ndarray:
    """Evaluation labels as class indices: integers in [0, classes) as they are, class names through `names`."""
    from packager.errors import DataError

    if labels.dtype.kind in "iu":
        count = len(names) or classes
        if labels.min() < 0 or (count and labels.max() >= count):
            span = f"0 to {count - 1}: the model scores {count} classes" if count else "0 up"
            raise DataError(
                f"{source}: labels run from {labels.min()} to {labels.max()}, but class indices run from {span}; "
                "give each row's class index (or class names with --labels)"
            )
        return labels.astype(np.int64)
    if not names:
        raise DataError(f"{source}: labels are class names, but the model's classes have no names: pass --labels")
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted({str(label) for label in labels} - set(index))
    if unknown:
        raise DataError(f"{source}: labels {unknown[:5]} are not among the model's classes {list(names)[:10]}")
    return np.array([index[str(label)] for label in labels], dtype=np.int64)
