"""Evaluation and calibration data: `.npz` files with one array per model input, plus `labels`.

An input with a batch axis holds the rows along that axis (for a recurrent state shaped
[layers, batch, hidden], axis 1); an input given once per request (a scalar sample rate, a flag) is
stored once, as the request would send it.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from handlers.manifest import TensorSpec
from packager.errors import DataError

LABELS_KEY = "labels"
SINGLE_INPUT_KEY = "x"
DEFAULT_MAX_ELEMENTS = 4096
"""An input given once per request keeps its value from the data as the manifest's default when small."""
SYNTHETIC_ROWS = 64
SYNTHETIC_MIN_ROWS = 8
SYNTHETIC_MAX_BYTES = 512 * 2**20
"""Synthetic inputs take at most this much memory: fewer rows for large inputs, and a model whose
declared shapes do not fit even SYNTHETIC_MIN_ROWS in it is asked for real data instead."""
_STRING_BYTES = 64


@dataclass(frozen=True)
class Dataset:
    inputs: dict[str, np.ndarray]
    axes: dict[str, int | None]
    """Each input's batch axis, or None for an input given once."""
    labels: np.ndarray | None
    source: str
    synthetic: bool = False

    def __len__(self) -> int:
        for name, axis in self.axes.items():
            if axis is not None:
                return int(self.inputs[name].shape[axis])
        return 1

    def take(self, index: np.ndarray) -> dict[str, np.ndarray]:
        """The rows at `index` (which may repeat rows), as one model feed."""
        return {
            name: array
            if self.axes[name] is None
            else np.ascontiguousarray(np.take(array, index, axis=self.axes[name]))
            for name, array in self.inputs.items()
        }

    def feed(self, rows: int) -> dict[str, np.ndarray]:
        """Exactly `rows` rows, cycling through the data when it has fewer."""
        return self.take(np.arange(rows) % len(self))

    def batches(self, size: int) -> list[dict[str, np.ndarray]]:
        return [self.take(np.arange(i, min(i + size, len(self)))) for i in range(0, len(self), size)]

    def head(self, count: int) -> Dataset:
        count = min(count, len(self))
        labels = None if self.labels is None else self.labels[:count]
        return replace(self, inputs=self.take(np.arange(count)), labels=labels)


def read_arrays(path: Path) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """The arrays of an .npz file (never unpickled) and its labels, if any."""
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    try:
        with path.open("rb") as handle:
            archive = np.load(handle, allow_pickle=False)
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise DataError(
                    f"{path} holds one array, not named arrays: write it with numpy.savez(path, x=inputs, labels=labels)"
                )
            with archive:
                arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path} is not a readable .npz file ({exc}); write it with numpy.savez") from exc
    return arrays, arrays.pop(LABELS_KEY, None)


def shapes(arrays: dict[str, np.ndarray], specs: tuple[TensorSpec, ...]) -> dict[str, tuple[int, ...]]:
    named = _by_input(arrays, specs)
    return {name: tuple(array.shape) for name, array in named.items()}


def _by_input(arrays: dict[str, np.ndarray], specs: tuple[TensorSpec, ...]) -> dict[str, np.ndarray]:
    names = [spec.name for spec in specs]
    required = [spec.name for spec in specs if spec.default is None]
    if len(required) == 1 and SINGLE_INPUT_KEY in arrays and required[0] not in arrays:
        arrays = {**arrays, required[0]: arrays[SINGLE_INPUT_KEY]}
        del arrays[SINGLE_INPUT_KEY]
    return {name: arrays[name] for name in names if name in arrays}


def make_dataset(
    arrays: dict[str, np.ndarray], labels: np.ndarray | None, specs: tuple[TensorSpec, ...], source: str
) -> Dataset:
    named = _by_input(arrays, specs)
    missing = [spec.name for spec in specs if spec.name not in named and spec.default is None]
    if missing:
        raise DataError(
            f"{source} has arrays {sorted(arrays)} but the model takes inputs {[s.name for s in specs]}: store one "
            f"array per input under its name (or '{SINGLE_INPUT_KEY}' for a single input), labels under '{LABELS_KEY}'"
        )
    inputs = {}
    for spec in specs:
        array = named[spec.name] if spec.name in named else np.array(spec.default)
        inputs[spec.name] = _conform(array, spec, source)
    axes = {spec.name: spec.batch_axis for spec in specs}
    counts = {name: inputs[name].shape[axis] for name, axis in axes.items() if axis is not None}
    if len(set(counts.values())) > 1 or 0 in counts.values():
        raise DataError(f"{source}: every batched input needs the same, non-zero number of rows, got {counts}")
    dataset = Dataset(inputs=inputs, axes=axes, labels=labels, source=source)
    if labels is not None:
        _check_labels(labels, len(dataset), source)
    return dataset


def load_dataset(path: Path, specs: tuple[TensorSpec, ...]) -> Dataset:
    arrays, labels = read_arrays(path)
    return make_dataset(arrays, labels, specs, str(path))


def _check_labels(labels: np.ndarray, rows: int, source: str) -> None:
    if labels.ndim != 1 or len(labels) != rows:
        raise DataError(
            f"{source}: 'labels' is shaped {list(labels.shape)} but the inputs have {rows} rows: give one label per row"
        )
    if labels.dtype.kind == "f":
        raise DataError(f"{source}: 'labels' holds floats; give class indices (integers) or class names (strings)")
    if labels.dtype.kind not in "iuUS":
        raise DataError(
            f"{source}: 'labels' holds {labels.dtype}; give class indices (integers) or class names (strings)"
        )


def _conform(array: np.ndarray, spec: TensorSpec, source: str) -> np.ndarray:
    if array.ndim != len(spec.shape):
        given = "once (no batch axis)" if spec.batch_axis is None else f"with its rows on axis {spec.batch_axis}"
        raise DataError(
            f"{source}: array {spec.name} is shaped {list(array.shape)} but the model input is {spec.describe()}, "
            f"given {given}"
        )
    for axis, (got, want) in enumerate(zip(array.shape, spec.shape, strict=True)):
        if axis != spec.batch_axis and isinstance(want, int) and want > 0 and got != want:
            raise DataError(
                f"{source}: array {spec.name} has {got} on axis {axis} where the model input {spec.describe()} needs {want}"
            )
    if spec.dtype == "string":
        if array.dtype.kind not in "US":
            raise DataError(f"{source}: array {spec.name} holds {array.dtype}, the model input takes strings")
        return array.astype(object)
    if array.dtype.kind not in "biuf":
        raise DataError(f"{source}: array {spec.name} holds {array.dtype}, not numbers")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise DataError(f"{source}: array {spec.name} holds NaN or infinite values; give finite numbers")
    return array.astype(spec.dtype, copy=False)


def with_defaults(specs: tuple[TensorSpec, ...], data: Dataset) -> tuple[TensorSpec, ...]:
    """Inputs given once per request take their value from the user's data as their default, when small
    (never from synthetic data: a made-up sample rate is no default)."""
    if data.synthetic:
        return specs
    out = []
    for spec in specs:
        value = data.inputs[spec.name]
        if spec.batch_axis is None and spec.default is None and value.size <= DEFAULT_MAX_ELEMENTS:
            spec = replace(spec, default=value.tolist())
        out.append(spec)
    return tuple(out)


def synthetic_dataset(specs: tuple[TensorSpec, ...], rows: int = SYNTHETIC_ROWS, seed: int = 0) -> Dataset:
    """Inputs drawn from the signature, for when the user gave no data: good for fidelity, not accuracy."""
    rows = _synthetic_rows(specs, rows)
    rng = np.random.default_rng(seed)
    inputs = {}
    for spec in specs:
        if spec.default is not None:
            inputs[spec.name] = np.array(spec.default).astype(spec.dtype if spec.dtype != "string" else object)
            continue
        shape = [_synthetic_size(spec, axis, dim, rows) for axis, dim in enumerate(spec.shape)]
        if spec.dtype.startswith("float"):
            inputs[spec.name] = rng.random(shape, dtype=np.float64 if spec.dtype == "float64" else np.float32).astype(
                spec.dtype, copy=False
            )
        elif spec.dtype == "string":
            inputs[spec.name] = np.array(rng.choice(["a", "b", "c"], size=shape), dtype=object)
        elif spec.dtype == "bool":
            inputs[spec.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            inputs[spec.name] = rng.integers(0, 2, shape).astype(spec.dtype)
    axes = {spec.name: spec.batch_axis for spec in specs}
    return Dataset(
        inputs=inputs, axes=axes, labels=None, source="synthetic inputs drawn from the signature", synthetic=True
    )


def _synthetic_rows(specs: tuple[TensorSpec, ...], rows: int) -> int:
    """How many synthetic rows fit in SYNTHETIC_MAX_BYTES, counted from the declared shapes before
    anything is allocated (a graph may declare [batch, 100000, 100000])."""
    per_row = fixed = 0
    for spec in specs:
        if spec.default is not None:
            continue
        itemsize = _STRING_BYTES if spec.dtype == "string" else np.dtype(spec.dtype).itemsize
        size = math.prod(_synthetic_size(spec, axis, dim, 1) for axis, dim in enumerate(spec.shape)) * itemsize
        scales = spec.batch_axis is not None and not isinstance(spec.shape[spec.batch_axis], int)
        if scales:
            per_row += size
        else:
            fixed += size
    needed = fixed + per_row * SYNTHETIC_MIN_ROWS
    if needed > SYNTHETIC_MAX_BYTES:
        raise DataError(
            f"no --eval data, and the inputs the model declares ({'; '.join(s.describe() for s in specs)}) would "
            f"take {needed / 2**30:.3g} GiB as {SYNTHETIC_MIN_ROWS} synthetic rows: give --eval (or --calibration) "
            "data, a .npz of real inputs"
        )
    return min(rows, (SYNTHETIC_MAX_BYTES - fixed) // per_row) if per_row else rows


def _synthetic_size(spec: TensorSpec, axis: int, dim: int | str, rows: int) -> int:
    """A symbolic image side is 64 (a multiple of 32, as detectors need); other symbolic sizes 16."""
    if axis == spec.batch_axis:
        return dim if isinstance(dim, int) else rows
    if isinstance(dim, int):
        return dim
    return 64 if len(spec.shape) == 4 else 16
