"""Tensors in and out: what a request may send for each input (checked against the manifest's signature
before anything runs), how rows are split for fixed-batch graphs, and outputs as JSON."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from handlers.errors import BadRequestError, ManifestError, PayloadTooLargeError, UnprocessableError
from handlers.manifest import Manifest, TensorSpec

MAX_INPUT_ELEMENTS = 4_000_000
"""More numbers than a 6 MB JSON body can carry; a bound on work before anything is allocated."""

_NUMPY_DTYPES: dict[str, np.dtype[Any]] = {
    name: np.dtype(name)
    for name in (
        "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
        "float16", "float32", "float64",
    )
} | {"string": np.dtype(object)}  # fmt: skip

Output = np.ndarray | list[dict[Any, Any]]
"""What onnxruntime returns for one output: an array, or a list of maps (ZipMap)."""


def numpy_dtype(spec: TensorSpec) -> np.dtype[Any]:
    try:
        return _NUMPY_DTYPES[spec.dtype]
    except KeyError:
        raise ManifestError(f"input {spec.name} has dtype {spec.dtype}, which the handler cannot feed") from None


def shape_text(shape: tuple[Any, ...]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def to_array(value: Any, spec: TensorSpec) -> np.ndarray:
    """A JSON value as the array `spec` describes (shape checked later), or what is wrong with it."""
    if not spec.shape:
        if isinstance(value, list):
            raise BadRequestError(f"input {spec.name} is a single value ({spec.dtype}), not a list", code="wrong_shape")
    elif not isinstance(value, list):
        raise BadRequestError(
            f"input {spec.name} must be a nested list shaped {shape_text(spec.shape)}, got {type(value).__name__}",
            code="wrong_shape",
        )
    if spec.dtype == "string":
        return _strings(value, spec)
    try:
        raw = np.array(value)
    except ValueError as exc:
        raise BadRequestError(
            f"input {spec.name} is ragged: every row must have the same length ({exc})", code="wrong_shape"
        ) from exc
    if raw.size > MAX_INPUT_ELEMENTS:
        raise BadRequestError(f"input {spec.name} has {raw.size} values; the limit is {MAX_INPUT_ELEMENTS}")
    return cast_array(raw, spec)


def _strings(value: Any, spec: TensorSpec) -> np.ndarray:
    try:
        raw = np.array(value, dtype=object)
    except ValueError as exc:
        raise BadRequestError(f"input {spec.name} is ragged ({exc})", code="wrong_shape") from exc
    if raw.size > MAX_INPUT_ELEMENTS:
        raise BadRequestError(f"input {spec.name} has {raw.size} values; the limit is {MAX_INPUT_ELEMENTS}")
    if not all(isinstance(item, str) for item in raw.flat):
        raise BadRequestError(f"input {spec.name} must hold strings", code="wrong_dtype")
    return raw


def cast_array(raw: np.ndarray, spec: TensorSpec) -> np.ndarray:
    dtype = numpy_dtype(spec)
    if raw.size == 0:
        return raw.astype(dtype)
    if raw.dtype.kind == "O" and all(type(v) in (int, float) for v in raw.flat):
        raw = raw.astype(np.float64)  # integers too large for int64 arrive as Python objects
    kind = raw.dtype.kind
    if kind not in "biuf":
        found = "strings" if kind in "US" else "objects or nulls"
        raise BadRequestError(
            f"input {spec.name} must hold only numbers ({spec.dtype}), found {found}", code="wrong_dtype"
        )
    if dtype.kind == "b":
        if kind != "b":
            raise BadRequestError(f"input {spec.name} must hold true/false values", code="wrong_dtype")
        return raw.astype(dtype)
    if kind == "b":
        raise BadRequestError(f"input {spec.name} must hold numbers ({spec.dtype}), not true/false", code="wrong_dtype")
    if dtype.kind in "iu":
        if kind == "f" and not (np.all(np.isfinite(raw)) and np.all(raw == np.floor(raw))):
            raise BadRequestError(
                f"input {spec.name} must hold integers ({spec.dtype}), found fractional values", code="wrong_dtype"
            )
        info = np.iinfo(dtype)
        low, high = raw.min(), raw.max()
        if low < info.min or high > info.max:
            raise BadRequestError(
                f"input {spec.name} has values outside the range of {spec.dtype} [{info.min}, {info.max}]",
                code="wrong_dtype",
            )
        if spec.value_range is not None and (low < spec.value_range[0] or high > spec.value_range[1]):
            bad = int(low) if low < spec.value_range[0] else int(high)
            raise UnprocessableError(
                f"input {spec.name} holds {bad}; this model takes values in [{spec.value_range[0]}, "
                f"{spec.value_range[1]}] (the size of the table it indexes, such as a vocabulary)",
                code="out_of_range",
            )
        return raw.astype(dtype)
    with np.errstate(over="ignore"):
        cast = raw.astype(dtype, copy=False)
        # JSON carries no NaN or infinity, so only an overflow in the cast is not finite; a sum that
        # overflows without one is told apart by the full check, which runs only then.
        if not math.isfinite(cast.sum()) and not np.isfinite(cast).all():
            raise BadRequestError(f"input {spec.name} has values too large for {spec.dtype}", code="wrong_dtype")
    return cast


def check_shape(shape: tuple[int, ...], spec: TensorSpec, manifest: Manifest) -> None:
    expected = spec.shape
    if len(shape) != len(expected):
        hint = ""
        if len(shape) == len(expected) - 1 and spec.batch_axis == 0:
            hint = "; wrap a single example in a list to make a batch of one"
        raise BadRequestError(
            f"input {spec.name} must be shaped {shape_text(expected)}, got {list(shape)}{hint}", code="wrong_shape"
        )
    for axis, (got, want) in enumerate(zip(shape, expected, strict=True)):
        if got == 0:
            raise BadRequestError(f"input {spec.name} is empty along axis {axis}", code="wrong_shape")
        if axis == spec.batch_axis:
            continue  # any number of rows: fixed-batch graphs are fed in chunks of their batch
        if isinstance(want, int) and want > 0 and got != want:
            raise BadRequestError(
                f"input {spec.name} must be shaped {shape_text(expected)}, got {list(shape)} "
                f"(axis {axis} is {got}, expected {want})",
                code="wrong_shape",
            )
        bounds = manifest.dims.get(want) if isinstance(want, str) else None
        if bounds is not None and not (bounds.min <= got and (bounds.max is None or got <= bounds.max)):
            raise BadRequestError(
                f"input {spec.name}: dimension {want} (axis {axis}) is {got}; this model takes {bounds.describe()}",
                code="wrong_shape",
            )


def decode_inputs(payload: Any, manifest: Manifest) -> dict[str, np.ndarray]:
    """`{"inputs": array}` when one input must be sent, or `{"inputs": {name: array}}` for any model.
    Inputs given once per request (no batch axis) may be left out when the manifest has a default."""
    if not isinstance(payload, dict) or "inputs" not in payload:
        raise BadRequestError('the body must be a JSON object with an "inputs" field', code="bad_request")
    specs = manifest.inputs
    inputs = payload["inputs"]
    required = manifest.required_inputs
    if not isinstance(inputs, dict):
        if len(required) != 1:
            raise BadRequestError(
                f'this model takes {len(specs)} inputs: send "inputs" as an object keyed by {[s.name for s in specs]}',
            )
        inputs = {required[0]: inputs}
    else:
        names = [spec.name for spec in specs]
        unknown = sorted(set(inputs) - set(names))
        missing = [name for name in required if name not in inputs]
        if unknown or missing:
            raise BadRequestError(
                f"inputs must be {names} (those with defaults may be left out); missing {missing}, unknown {unknown}",
                code="wrong_inputs",
            )
    arrays = {}
    for spec in specs:
        value = inputs.get(spec.name, spec.default)
        array = to_array(value, spec)
        check_shape(array.shape, spec, manifest)
        arrays[spec.name] = array
    check_rows(arrays, manifest)
    return arrays


class FloatInput:
    """The request most models get, recognised in a few steps: `{"inputs": [...]}` for a model with one
    float input, whose numbers have the rank and sizes the signature allows. `decode` returns None for
    anything else, and `decode_inputs`, the one owner of the checks and their messages, decides; a test
    holds the two to the same answers on valid and invalid requests alike."""

    def __init__(self, spec: TensorSpec, manifest: Manifest) -> None:
        self.name = spec.name
        self.dtype = numpy_dtype(spec)
        self.ndim = len(spec.shape)
        self.sizes: list[tuple[int, int, float]] = []
        """(axis, least, most) for every axis: what check_shape and check_rows accept."""
        for axis, want in enumerate(spec.shape):
            if axis == spec.batch_axis:
                rows = manifest.limits.max_rows
                self.sizes.append((axis, 1, math.inf if rows is None else rows))
            elif isinstance(want, int) and want > 0:
                self.sizes.append((axis, want, want))
            elif isinstance(want, str) and (bounds := manifest.dims.get(want)) is not None:
                self.sizes.append((axis, bounds.min, math.inf if bounds.max is None else bounds.max))
            else:
                self.sizes.append((axis, 1, math.inf))

    @classmethod
    def of(cls, manifest: Manifest) -> FloatInput | None:
        """The plan for a manifest it fits: one input, float, required, not fed in fixed batches, with no
        symbolic dimension named twice (check_rows makes those agree)."""
        if len(manifest.inputs) != 1 or manifest.fixed_batch is not None:
            return None
        spec = manifest.inputs[0]
        symbolic = [d for d in spec.shape if isinstance(d, str)]
        if spec.dtype not in ("float16", "float32", "float64") or spec.default is not None or not spec.shape:
            return None
        return cls(spec, manifest) if len(symbolic) == len(set(symbolic)) else None

    def decode(self, payload: Any) -> dict[str, np.ndarray] | None:
        if type(payload) is not dict or len(payload) != 1 or type(value := payload.get("inputs")) is not list:
            return None
        try:
            raw = np.array(value)
        except ValueError:
            return None
        if raw.dtype.kind != "f" or raw.ndim != self.ndim or raw.size > MAX_INPUT_ELEMENTS:
            return None
        shape = raw.shape
        for axis, least, most in self.sizes:
            if not least <= shape[axis] <= most:
                return None
        with np.errstate(over="ignore"):
            cast = raw.astype(self.dtype, copy=False)
            if not math.isfinite(cast.sum()):
                return None
        return {self.name: cast}


def check_rows(arrays: dict[str, np.ndarray], manifest: Manifest) -> int:
    """Inputs that share a symbolic dimension must agree on its size, and batched inputs on their rows.
    Returns the number of rows (1 for a model whose inputs all come once per request)."""
    sizes: dict[str, tuple[str, int]] = {}
    rows: tuple[str, int] | None = None
    for spec in manifest.inputs:
        shape = arrays[spec.name].shape
        for axis, dim in enumerate(spec.shape):
            if isinstance(dim, str) and axis != spec.batch_axis:
                if dim in sizes and sizes[dim][1] != shape[axis]:
                    other, size = sizes[dim]
                    raise BadRequestError(
                        f"dimension {dim} is {size} in input {other} but {shape[axis]} in input {spec.name}",
                        code="wrong_shape",
                    )
                sizes.setdefault(dim, (spec.name, shape[axis]))
        if spec.batch_axis is not None:
            count = shape[spec.batch_axis]
            if rows is not None and rows[1] != count:
                raise BadRequestError(
                    f"input {rows[0]} has {rows[1]} rows but input {spec.name} has {count}", code="wrong_shape"
                )
            rows = rows or (spec.name, count)
    count = rows[1] if rows else 1
    limit = manifest.limits.max_rows
    if limit is not None and count > limit:
        raise PayloadTooLargeError(
            f"{count} rows in one request; this endpoint takes at most {limit} ({manifest.limits.basis}): "
            "send fewer rows per request",
            code="too_many_rows",
        )
    fixed = manifest.fixed_batch
    if fixed is not None and count != fixed and not splittable(manifest):
        raise BadRequestError(
            f"this model takes exactly {fixed} row{'s' if fixed > 1 else ''} per request, got {count}: "
            "its outputs have no batch axis to join smaller calls by",
            code="wrong_shape",
        )
    return count


def splittable(manifest: Manifest) -> bool:
    """A fixed-batch model serves any number of rows when every output has a batch axis to join by."""
    return all(spec.batch_axis is not None for spec in manifest.outputs)


def run_in_chunks(run: Any, arrays: dict[str, np.ndarray], manifest: Manifest, rows: int) -> dict[str, Output]:
    """Feed a fixed-batch graph `fixed` rows at a time (the last chunk padded by repeating its last row)
    and join the outputs along their batch axes, without the padding."""
    fixed = manifest.fixed_batch
    assert fixed is not None
    parts: list[dict[str, Output]] = []
    for start in range(0, rows, fixed):
        chunk = {}
        for spec in manifest.inputs:
            array = arrays[spec.name]
            if spec.batch_axis is None:
                chunk[spec.name] = array
                continue
            index = np.minimum(np.arange(start, start + fixed), rows - 1)
            chunk[spec.name] = np.take(array, index, axis=spec.batch_axis)
        parts.append(run(chunk))
    joined: dict[str, Output] = {}
    for spec in manifest.outputs:
        pieces = [part[spec.name] for part in parts]
        axis = spec.batch_axis
        assert axis is not None
        if isinstance(pieces[0], list):
            joined[spec.name] = [row for piece in pieces for row in piece][:rows]  # type: ignore[union-attr]
        else:
            whole: np.ndarray = np.concatenate(pieces, axis=axis)  # type: ignore[arg-type]
            joined[spec.name] = np.take(whole, np.arange(rows), axis=axis)
    return joined


def to_json(value: Output, *, compact: bool = False) -> tuple[Any, int]:
    """An output as strict JSON, and how many of its values were not finite numbers (an overflow, a
    NaN): those become null. Arrays as nested lists, maps with string keys, strings as they are.
    `compact` writes float32 and float16 values with the fewest digits that read back as the same value
    (about half as many as float64's), for answers that would not fit Lambda's 6 MB otherwise."""
    if isinstance(value, list):
        rows = [{str(k): _plain(v) for k, v in row.items()} for row in value]
        bad = sum(1 for row in rows for v in row.values() if isinstance(v, float) and not math.isfinite(v))
        if bad:
            rows = [{k: _finite(v) for k, v in row.items()} for row in rows]
        return rows, bad
    if value.dtype.kind == "f":
        finite = np.isfinite(value)
        if not finite.all():
            cells = np.asarray(numbers(value, compact=compact), dtype=object) if value.ndim else value.astype(object)
            cells[~finite] = None
            return cells.tolist(), int(value.size - np.count_nonzero(finite))
        return numbers(value, compact=compact), 0
    if value.dtype == object:
        return (np.vectorize(str, otypes=[object])(value).tolist() if value.size else value.tolist()), 0
    return numbers(value, compact=compact), 0


def numbers(value: np.ndarray, *, compact: bool = False) -> Any:
    """A finite array as (nested) Python numbers; see `to_json` for `compact`."""
    if compact and value.dtype in (np.float32, np.float16):
        return value.astype(str).astype(np.float64).tolist()  # numpy prints each with its own type's shortest digits
    return value.tolist()


def non_finite_warning(name: str, count: int) -> str:
    return f"output {name} has {count} values that are not finite numbers (overflow or NaN), sent as null"


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def scores_matrix(value: Output, labels: tuple[str, ...]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Class scores as [rows, classes] with their labels: from a score matrix, or from ZipMap maps."""
    if isinstance(value, list):
        keys = tuple(str(k) for k in value[0]) if value else labels
        return np.array([[float(row[k]) for k in row] for row in value], dtype=np.float64), keys
    return value.reshape(value.shape[0], -1).astype(np.float64), labels


SMALL_CLASSES = 64
"""Up to this many classes, a row is ranked in plain Python: numpy's per-call cost dominates below it."""


def top_k(value: Output, labels: tuple[str, ...], k: int, listed: Any = None) -> list[dict[str, Any]]:
    """Per row: the best label, its probability and the k best, from logits or probabilities. A row
    whose scores are not all finite has no prediction (label null): nothing is made up. `listed`: the
    value already as nested lists (the answer's own), ranked as it is when it is a float score matrix."""
    if (
        listed is not None
        and isinstance(value, np.ndarray)
        and value.ndim == 2
        and value.dtype.kind == "f"
        and value.shape[1] <= SMALL_CLASSES
    ):
        return [_rank(row, labels, k) for row in listed]
    rows, names = scores_matrix(value, labels)
    if rows.shape[1] <= SMALL_CLASSES:
        return [_rank(row, names, k) for row in rows.tolist()]
    finite = np.isfinite(rows)
    ok = finite.all(axis=1).tolist()
    rows = np.where(finite, rows, 0.0)
    if rows.min() < 0 or float(np.abs(rows.sum(axis=1) - 1.0).max()) > 1e-3:  # logits: softmax them
        rows = np.exp(rows - rows.max(axis=1, keepdims=True))
        rows /= rows.sum(axis=1, keepdims=True)
    k = min(k, rows.shape[1])
    order = np.argsort(-rows, axis=1, kind="stable")[:, :k]
    scores = rows[np.arange(len(rows))[:, None], order].round(6).tolist()
    return [
        _prediction(names, indices, values) if good else _NO_PREDICTION
        for good, indices, values in zip(ok, order.tolist(), scores, strict=True)
    ]


_NO_PREDICTION: dict[str, Any] = {"label": None, "score": None, "top_k": []}


def _rank(row: list[float], names: tuple[str, ...], k: int) -> dict[str, Any]:
    if not all(map(math.isfinite, row)):
        return _NO_PREDICTION
    if min(row) < 0 or abs(sum(row) - 1.0) > 1e-3:  # logits: softmax them
        top = max(row)
        exps = [math.exp(v - top) for v in row]
        total = sum(exps)
        row = [v / total for v in exps]
    order = sorted(range(len(row)), key=row.__getitem__, reverse=True)[:k]  # stable, as np.argsort
    return _prediction(names, order, [round(row[i] * 1e6) / 1e6 for i in order])  # as numpy's .round(6)


def _prediction(names: tuple[str, ...], indices: list[int], scores: list[float]) -> dict[str, Any]:
    count = len(names)
    best = [{"label": names[i] if i < count else str(i), "score": v} for i, v in zip(indices, scores, strict=True)]
    return {"label": best[0]["label"], "score": scores[0], "top_k": best}
