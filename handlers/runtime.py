"""The model at run time: one ONNX Runtime session, and the checks a request passes before it runs."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from handlers.errors import BadRequestError, ManifestError, ModelNotReadyError, reason
from handlers.logs import logger
from handlers.manifest import Manifest, TensorPreprocessing, TensorSpec, sha256_file

if TYPE_CHECKING:
    import onnxruntime

    from handlers.codecs import Codec
    from handlers.contract import RuntimeSettings

MAX_INPUT_ELEMENTS = 4_000_000
"""More numbers than a 6 MB JSON body can carry; a bound on work before anything is allocated."""

_NUMPY_DTYPES: dict[str, np.dtype[Any]] = {
    name: np.dtype(name)
    for name in ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")
}


def numpy_dtype(spec: TensorSpec) -> np.dtype[Any]:
    try:
        return _NUMPY_DTYPES[spec.dtype]
    except KeyError as exc:
        raise ManifestError(f"input {spec.name} has dtype {spec.dtype}, which the handler cannot feed") from exc


def open_session(path: Path, intra_op_threads: int | None = None) -> onnxruntime.InferenceSession:
    """The session as a Lambda sandbox runs it: one request at a time, threads matched to its vCPUs.
    The packager measures candidates through this same function."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = intra_op_threads or max(1, len(os.sched_getaffinity(0)))
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


@dataclass
class ModelRuntime:
    manifest: Manifest
    session: onnxruntime.InferenceSession
    timings: dict[str, float] = field(default_factory=dict)
    """What loading cost, in ms: verify (manifest, checksum, any download) and session creation."""
    codec: Codec | None = None
    """How `{"image": ...}` or `{"text": ...}` requests become tensors, when the bundle takes them."""

    def __post_init__(self) -> None:
        self._output_names = [spec.name for spec in self.manifest.outputs]

    @classmethod
    def load(cls, settings: RuntimeSettings, *, verify: bool = True) -> ModelRuntime:
        start = time.perf_counter()
        manifest = Manifest.load(settings.model_dir)
        if settings.model_uri is not None:
            from handlers.model_store import fetch

            model_path = fetch(settings.model_uri, manifest.sha256, cache_dir=settings.cache_dir)
        else:
            model_path = settings.model_dir / manifest.model_file
            if not model_path.is_file():
                raise ManifestError(f"model file {model_path} named by the manifest does not exist")
            if verify and sha256_file(model_path) != manifest.sha256:
                raise ManifestError(f"sha256 of {model_path} does not match the manifest: refusing to serve it")
        verified = time.perf_counter()
        session = open_session(model_path, manifest.runtime.intra_op_threads)
        timings = {"verify_ms": (verified - start) * 1000, "session_ms": (time.perf_counter() - verified) * 1000}
        codec = None
        if not isinstance(manifest.preprocessing, TensorPreprocessing):
            from handlers.codecs import make_codec

            codec = make_codec(manifest, settings.model_dir)
        return cls(manifest=manifest, session=session, timings=timings, codec=codec)

    def decode(self, payload: Any) -> dict[str, np.ndarray]:
        """A /predict body as model inputs: tensors under "inputs", or what the bundle's codec takes."""
        if isinstance(payload, dict) and "inputs" not in payload and self.codec is not None:
            return self.codec.decode(payload)
        return decode_inputs(payload, self.manifest.inputs)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = self.session.run(self._output_names, inputs)
        return dict(zip(self._output_names, results, strict=True))


def to_array(value: Any, spec: TensorSpec) -> np.ndarray:
    """Turn a JSON value into the array `spec` describes, or say exactly what is wrong with it."""
    if not isinstance(value, list):
        raise BadRequestError(
            f"input {spec.name} must be a nested list of numbers shaped {_shape_text(spec.shape)}, "
            f"got {type(value).__name__}",
            code="wrong_shape",
        )
    try:
        raw = np.array(value)
    except ValueError as exc:
        raise BadRequestError(
            f"input {spec.name} is ragged: every row must have the same length ({exc})", code="wrong_shape"
        ) from exc
    if raw.size > MAX_INPUT_ELEMENTS:
        raise BadRequestError(f"input {spec.name} has {raw.size} values; the limit is {MAX_INPUT_ELEMENTS}")
    array = cast_array(raw, spec)
    check_shape(array.shape, spec)
    return array


def cast_array(raw: np.ndarray, spec: TensorSpec) -> np.ndarray:
    dtype = numpy_dtype(spec)
    if raw.size == 0:
        return raw.astype(dtype)
    if raw.dtype.kind == "O" and all(type(v) in (int, float) for v in raw.flat):
        raw = raw.astype(np.float64)  # integers too large for int64 arrive as Python objects
    kind = raw.dtype.kind
    if kind not in "biuf":
        raise BadRequestError(
            f"input {spec.name} must hold only numbers ({spec.dtype}), found {_json_kind(raw)}",
            code="wrong_dtype",
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
                f"input {spec.name} must hold integers ({spec.dtype}), found fractional values",
                code="wrong_dtype",
            )
        info = np.iinfo(dtype)
        if raw.min() < info.min or raw.max() > info.max:
            raise BadRequestError(
                f"input {spec.name} has values outside the range of {spec.dtype} [{info.min}, {info.max}]",
                code="wrong_dtype",
            )
        return raw.astype(dtype)
    with np.errstate(over="ignore"):
        cast = raw.astype(dtype)
    if not np.all(np.isfinite(cast)):
        raise BadRequestError(f"input {spec.name} has values too large for {spec.dtype}", code="wrong_dtype")
    return cast


def _json_kind(raw: np.ndarray) -> str:
    return "strings" if raw.dtype.kind in "US" else "objects or nulls"


def check_shape(shape: tuple[int, ...], spec: TensorSpec) -> None:
    expected = spec.shape
    if len(shape) != len(expected):
        hint = ""
        if len(shape) == len(expected) - 1 and isinstance(expected[0], str):
            hint = "; wrap a single example in a list to make a batch of one"
        raise BadRequestError(
            f"input {spec.name} must be shaped {_shape_text(expected)}, got {list(shape)}{hint}",
            code="wrong_shape",
        )
    for axis, (got, want) in enumerate(zip(shape, expected, strict=True)):
        if isinstance(want, int) and want >= 0 and got != want:
            raise BadRequestError(
                f"input {spec.name} must be shaped {_shape_text(expected)}, got {list(shape)} "
                f"(axis {axis} is {got}, expected {want})",
                code="wrong_shape",
            )
        if got == 0:
            raise BadRequestError(f"input {spec.name} is empty along axis {axis}", code="wrong_shape")


def _shape_text(shape: tuple[Any, ...]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def decode_inputs(payload: Any, specs: tuple[TensorSpec, ...]) -> dict[str, np.ndarray]:
    """`{"inputs": array}` for a one-input model, or `{"inputs": {name: array}}` for any model."""
    if not isinstance(payload, dict) or "inputs" not in payload:
        raise BadRequestError('the body must be a JSON object with an "inputs" field', code="bad_request")
    inputs = payload["inputs"]
    names = [spec.name for spec in specs]
    if not isinstance(inputs, dict):
        if len(specs) != 1:
            raise BadRequestError(
                f'this model takes {len(specs)} inputs: send "inputs" as an object keyed by {names}',
            )
        inputs = {specs[0].name: inputs}
    unknown = sorted(set(inputs) - set(names))
    missing = [name for name in names if name not in inputs]
    if unknown or missing:
        raise BadRequestError(
            f"inputs must be exactly {names}; missing {missing}, unknown {unknown}", code="wrong_inputs"
        )
    arrays = {spec.name: to_array(inputs[spec.name], spec) for spec in specs}
    check_batch(arrays, specs)
    return arrays


def check_batch(arrays: dict[str, np.ndarray], specs: tuple[TensorSpec, ...]) -> None:
    """Inputs that share a symbolic dimension (usually "batch") must agree on its size."""
    sizes: dict[str, tuple[str, int]] = {}
    for spec in specs:
        for axis, dim in enumerate(spec.shape):
            if not isinstance(dim, str):
                continue
            got = arrays[spec.name].shape[axis]
            if dim in sizes and sizes[dim][1] != got:
                other, size = sizes[dim]
                raise BadRequestError(
                    f"dimension {dim} is {size} in input {other} but {got} in input {spec.name}",
                    code="wrong_shape",
                )
            sizes.setdefault(dim, (spec.name, got))


def top_k(scores: np.ndarray, labels: tuple[str, ...], k: int) -> list[dict[str, Any]]:
    """Per row: the best label, its probability and the k best, from logits or probabilities."""
    rows = scores.reshape(scores.shape[0], -1).astype(np.float64)
    if not np.allclose(rows.sum(axis=1), 1.0, atol=1e-3) or rows.min() < 0:
        shifted = rows - rows.max(axis=1, keepdims=True)
        rows = np.exp(shifted)
        rows /= rows.sum(axis=1, keepdims=True)
    k = min(k, rows.shape[1])
    predictions = []
    for row in rows:
        order = np.argsort(-row, kind="stable")[:k]
        best = [{"label": labels[i] if i < len(labels) else str(i), "score": _round(row[i])} for i in order]
        predictions.append({"label": best[0]["label"], "score": best[0]["score"], "top_k": best})
    return predictions


def _round(value: float) -> float:
    return float(f"{value:.6g}") if math.isfinite(value) else 0.0


@dataclass
class Service:
    """The model this container serves, or why it cannot serve one."""

    runtime: ModelRuntime | None = None
    failure: str | None = None

    def require(self) -> ModelRuntime:
        if self.runtime is None:
            raise ModelNotReadyError(f"the model is not loaded: {self.failure or 'still starting'}")
        return self.runtime


def load_service(settings: RuntimeSettings) -> Service:
    """Never raises: a function that cannot load its model still answers, with 503 and the reason."""
    try:
        return Service(runtime=ModelRuntime.load(settings))
    except (ManifestError, OSError) as exc:
        why = str(exc)
    except Exception as exc:  # onnxruntime raises its own types for a corrupt model
        why = f"onnxruntime could not load the model: {reason(exc)}"
    logger.error("model failed to load", extra={"model_dir": str(settings.model_dir), "reason": why})
    return Service(failure=why)
