"""Read an ONNX graph's input and output signature in the manifest's terms."""

from __future__ import annotations

from pathlib import Path

import numpy as np

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


def read_metadata(path: Path) -> dict[str, str]:
    import onnx

    return {prop.key: prop.value for prop in onnx.load(str(path), load_external_data=False).metadata_props}


def ctc_charset(metadata: dict[str, str]) -> list[str] | None:
    """PaddleOCR recognizers carry their alphabet in metadata `character`, one per line, plus space."""
    text = metadata.get("character")
    if not text:
        return None
    return [*text.splitlines(), " "]


def count_parameters(path: Path) -> int:
    """Elements in the graph's weights (initializers and Constant tensors), whatever their dtype."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path), load_external_data=False).graph
    total = sum(int(np.prod(init.dims)) for init in graph.initializer)
    for node in graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    total += int(numpy_helper.to_array(attribute.t).size)
    return total
