"""The Open Inference Protocol (KServe V2) REST tensors: JSON in, arrays out, and back."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from handlers.errors import BadRequestError
from handlers.manifest import Manifest, TensorSpec
from handlers.tensors import (
    MAX_INPUT_ELEMENTS,
    Output,
    cast_array,
    check_rows,
    check_shape,
    non_finite_warning,
    to_json,
)

DATATYPES = {
    "bool": "BOOL", "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32", "uint64": "UINT64",
    "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64",
    "float16": "FP16", "float32": "FP32", "float64": "FP64", "string": "BYTES",
}  # fmt: skip
NUMPY = {v: k for k, v in DATATYPES.items()}


def datatype(spec: TensorSpec) -> str:
    """The protocol's name for a tensor type; a sequence of maps (ZipMap) travels as BYTES of JSON objects."""
    return DATATYPES.get(spec.dtype, "BYTES")


def tensor_metadata(spec: TensorSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "datatype": datatype(spec),
        "shape": [d if isinstance(d, int) and d >= 0 else -1 for d in spec.shape] if spec.is_tensor else [-1],
    }


def model_metadata(manifest: Manifest) -> dict[str, Any]:
    return {
        "name": manifest.name,
        "versions": [manifest.version],
        "platform": "onnxruntime_onnx",
        "inputs": [tensor_metadata(s) for s in manifest.inputs],
        "outputs": [tensor_metadata(s) for s in manifest.outputs],
    }


def decode_request(payload: Any, manifest: Manifest) -> tuple[dict[str, np.ndarray], list[str], Any]:
    """Inference request -> (inputs by name, outputs to return, request id)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list):
        raise BadRequestError('an inference request is a JSON object with an "inputs" list of tensors')
    specs = {spec.name: spec for spec in manifest.inputs}
    arrays: dict[str, np.ndarray] = {}
    for tensor in payload["inputs"]:
        name, array = _tensor(tensor, specs, manifest)
        if name in arrays:
            raise BadRequestError(f"input {name} appears twice", code="wrong_inputs")
        arrays[name] = array
    for spec in manifest.inputs:
        if spec.name not in arrays and spec.default is not None:
            arrays[spec.name] = cast_array(np.array(spec.default), spec)
    missing = [name for name in specs if name not in arrays]
    if missing:
        raise BadRequestError(f"inputs {missing} are missing; the model takes {list(specs)}", code="wrong_inputs")
    check_rows(arrays, manifest)
    known = [spec.name for spec in manifest.outputs]
    wanted = payload.get("outputs")
    if wanted is None:
        return arrays, known, payload.get("id")
    if not isinstance(wanted, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in wanted):
        raise BadRequestError('"outputs" must be a list of objects with a "name"')
    names = [o["name"] for o in wanted]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise BadRequestError(f"unknown outputs {unknown}; the model returns {known}", code="wrong_outputs")
    return arrays, names, payload.get("id")


def _tensor(tensor: Any, specs: dict[str, TensorSpec], manifest: Manifest) -> tuple[str, np.ndarray]:
    if not isinstance(tensor, dict):
        raise BadRequestError("each input tensor must be an object with name, shape, datatype and data")
    name, shape, datatype, data = (tensor.get(k) for k in ("name", "shape", "datatype", "data"))
    if not isinstance(name, str) or name not in specs:
        raise BadRequestError(f"unknown input {name!r}; the model takes {list(specs)}", code="wrong_inputs")
    spec = specs[name]
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise BadRequestError(f"input {name}: shape must be a list of non-negative integers", code="wrong_shape")
    if datatype not in NUMPY:
        raise BadRequestError(f"input {name}: datatype {datatype!r} is not one of {sorted(NUMPY)}", code="wrong_dtype")
    if datatype != DATATYPES.get(spec.dtype):
        raise BadRequestError(
            f"input {name}: datatype is {datatype} but the model takes {DATATYPES.get(spec.dtype)}", code="wrong_dtype"
        )
    if not isinstance(data, list):
        raise BadRequestError(f"input {name}: data must be a list (flat, row-major, or nested)", code="wrong_shape")
    count = math.prod(shape)
    if count > MAX_INPUT_ELEMENTS:
        raise BadRequestError(f"input {name} has {count} values; the limit is {MAX_INPUT_ELEMENTS}")
    try:
        raw = np.array(data, dtype=object if datatype == "BYTES" else None)
    except ValueError as exc:
        raise BadRequestError(f"input {name}: data is ragged ({exc})", code="wrong_shape") from exc
    if raw.size != count:
        raise BadRequestError(
            f"input {name}: shape {shape} needs {count} values, data has {raw.size}", code="wrong_shape"
        )
    if datatype == "BYTES":
        if not all(isinstance(item, str) for item in raw.flat):
            raise BadRequestError(f"input {name}: BYTES data must be strings", code="wrong_dtype")
        array = raw.reshape(shape)
    else:
        array = cast_array(raw, spec).reshape(shape)
    check_shape(array.shape, spec, manifest)
    return name, array


def encode_tensor(name: str, value: Output, *, compact: bool = False) -> tuple[dict[str, Any], int]:
    """One output tensor of the response, and how many of its values were not finite (sent as null)."""
    if isinstance(value, list):
        rows, bad = to_json(value)
        data = [json.dumps(row, allow_nan=False) for row in rows]
        return {"name": name, "shape": [len(data)], "datatype": "BYTES", "data": data}, bad
    if value.dtype == object:
        data = [str(v) for v in value.ravel()]
        return {"name": name, "shape": list(value.shape), "datatype": "BYTES", "data": data}, 0
    kind = DATATYPES.get(value.dtype.name, value.dtype.name.upper())
    flat, bad = to_json(value.ravel(), compact=compact)
    return {"name": name, "shape": list(value.shape), "datatype": kind, "data": flat}, bad


def encode_response(
    manifest: Manifest, outputs: dict[str, Output], names: list[str], request_id: Any, *, compact: bool = False
) -> dict[str, Any]:
    tensors, warnings = [], []
    for name in names:
        tensor, bad = encode_tensor(name, outputs[name], compact=compact)
        tensors.append(tensor)
        if bad:
            warnings.append(non_finite_warning(name, bad))
    body: dict[str, Any] = {"model_name": manifest.name, "model_version": manifest.version, "outputs": tensors}
    if warnings:
        body["parameters"] = {"warnings": warnings}
    if request_id is not None:
        body["id"] = request_id
    return body
