"""Read an ONNX graph's input and output signature in the manifest's terms."""

from __future__ import annotations

from pathlib import Path

from handlers.manifest import Dim, TensorSpec
from packager.errors import ModelLoadError

_ONNX_TO_NUMPY = {
    1: "float32",
    2: "uint8",
    3: "int8",
    5: "int16",
    6: "int32",
    7: "int64",
    9: "bool",
    10: "float16",
    11: "float64",
}


def read_signature(path: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}
    inputs = tuple(_spec(value) for value in graph.input if value.name not in initializers)
    outputs = tuple(_spec(value) for value in graph.output)
    return inputs, outputs


def _spec(value: object) -> TensorSpec:
    tensor = value.type.tensor_type  # type: ignore[attr-defined]
    name = value.name  # type: ignore[attr-defined]
    if tensor.elem_type not in _ONNX_TO_NUMPY:
        raise ModelLoadError(f"tensor {name} has ONNX element type {tensor.elem_type}, which lambdafit cannot serve")
    shape: list[Dim] = []
    for axis, dim in enumerate(tensor.shape.dim):
        if dim.HasField("dim_value"):
            shape.append(int(dim.dim_value))
        else:
            shape.append(dim.dim_param or f"d{axis}")
    return TensorSpec(name=name, dtype=_ONNX_TO_NUMPY[tensor.elem_type], shape=tuple(shape))
