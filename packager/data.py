"""Evaluation and calibration data: `.npz` files with one array per model input, plus `labels`."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from handlers.manifest import TensorSpec
from packager.errors import DataError

LABELS_KEY = "labels"
SINGLE_INPUT_KEY = "x"


@dataclass(frozen=True)
class Dataset:
    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None
    source: str

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))

    def batches(self, size: int) -> list[dict[str, np.ndarray]]:
        return [{k: v[i : i + size] for k, v in self.inputs.items()} for i in range(0, len(self), size)]

    def head(self, count: int) -> Dataset:
        labels = None if self.labels is None else self.labels[:count]
        return Dataset({k: v[:count] for k, v in self.inputs.items()}, labels, self.source)


def load_dataset(path: Path, specs: tuple[TensorSpec, ...]) -> Dataset:
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path} is not a readable .npz file ({exc}); write it with numpy.savez") from exc
    labels = arrays.pop(LABELS_KEY, None)
    names = [spec.name for spec in specs]
    if len(specs) == 1 and SINGLE_INPUT_KEY in arrays and names[0] not in arrays:
        arrays[names[0]] = arrays.pop(SINGLE_INPUT_KEY)
    missing = [n for n in names if n not in arrays]
    if missing:
        raise DataError(
            f"{path} has arrays {sorted(arrays)} but the model takes inputs {names}: "
            f"store one array per input under its name (or 'x' for a single input), labels under 'labels'"
        )
    inputs = {spec.name: _conform(arrays[spec.name], spec, path) for spec in specs}
    counts = {len(v) for v in inputs.values()}
    if len(counts) != 1 or 0 in counts:
        raise DataError(f"{path}: every input needs the same, non-zero number of rows, got {sorted(counts)}")
    if labels is not None and len(labels) != counts.pop():
        raise DataError(
            f"{path}: 'labels' has {len(labels)} rows but the inputs have {len(next(iter(inputs.values())))}"
        )
    return Dataset(inputs=inputs, labels=labels, source=str(path))


def _conform(array: np.ndarray, spec: TensorSpec, path: Path) -> np.ndarray:
    if array.ndim != len(spec.shape):
        raise DataError(
            f"{path}: array {spec.name} is shaped {list(array.shape)} but the model input is {spec.describe()}"
        )
    for axis, (got, want) in enumerate(zip(array.shape, spec.shape, strict=True)):
        if isinstance(want, int) and want > 0 and got != want:
            raise DataError(
                f"{path}: array {spec.name} has {got} on axis {axis} where the model input {spec.describe()} needs {want}"
            )
    if array.dtype.kind not in "biuf":
        raise DataError(f"{path}: array {spec.name} holds {array.dtype}, not numbers")
    return array.astype(spec.dtype, copy=False)


def synthetic_dataset(specs: tuple[TensorSpec, ...], rows: int = 64, seed: int = 0) -> Dataset:
    """Inputs drawn from the signature, for when the user gave no data: good for fidelity, not accuracy."""
    rng = np.random.default_rng(seed)
    inputs = {}
    for spec in specs:
        shape = [rows] + [d if isinstance(d, int) and d > 0 else 1 for d in spec.shape[1:]]
        if spec.dtype.startswith("float"):
            inputs[spec.name] = rng.random(shape).astype(spec.dtype)
        else:
            inputs[spec.name] = rng.integers(0, 2, shape).astype(spec.dtype)
    return Dataset(inputs=inputs, labels=None, source="synthetic inputs drawn from the signature")
