"""A graph's signature in the manifest's terms: every input's and output's type, shape and batch axis.

The graph says the types and (often unnamed, sometimes wrong) shapes. Which axis holds a request's
rows comes from the dimension names the inputs share, from `--batch-axis NAME=AXIS`, or from the data;
the outputs' batch axes, and their real shapes, from running the model at two batch sizes.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from handlers.manifest import Dim, DimBounds, TensorSpec
from packager.errors import ModelLoadError

_ONNX_TO_NUMPY = {
    1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 8: "string",
    9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64",
}  # fmt: skip
_UNSERVABLE = {14: "complex64", 15: "complex128", 16: "bfloat16", 17: "float8e4m3fn", 18: "float8e4m3fnuz",
               19: "float8e5m2", 20: "float8e5m2fnuz", 21: "uint4", 22: "int4"}  # fmt: skip
BATCH = "batch"
_BATCH_NAMES = ("batch", "batch_size", "n", "N", "bs", "unk__0", "dynamicdimension.0", "d0")
UNBATCHED = "none"
_NAMED_DIM = re.compile(r"[A-Za-z0-9_]")
"""A dimension name says something when it has a letter, digit or underscore in it ("?" does not)."""


def read_signature(path: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Types and declared shapes, batch axes not yet known (0 where there is an axis)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}
    inputs = tuple(_spec(value, "input") for value in graph.input if value.name not in initializers)
    if not inputs:
        raise ModelLoadError(
            f"{path} takes no inputs (every graph input has a default in its initializers): "
            "lambdafit serves models that take inputs"
        )
    outputs = tuple(_spec(value, "output") for value in graph.output)
    return inputs, outputs


def _spec(value: Any, role: str) -> TensorSpec:
    name = value.name
    kind = value.type.WhichOneof("value")
    if kind == "sequence_type" and role == "output":
        element = value.type.sequence_type.elem_type
        if element.WhichOneof("value") == "map_type":
            key = _ONNX_TO_NUMPY.get(element.map_type.key_type)
            inner = element.map_type.value_type.tensor_type.elem_type
            if key in ("string", "int64") and inner in _ONNX_TO_NUMPY:
                return TensorSpec(name, f"seq(map({key},{_ONNX_TO_NUMPY[inner]}))", (BATCH,))
    if kind != "tensor_type":
        raise ModelLoadError(
            f"{role} {name} is a {kind.replace('_type', '') if kind else 'typeless'} value; lambdafit serves tensors "
            "(and sequences of maps as outputs): export the model with tensor inputs and outputs"
        )
    tensor = value.type.tensor_type
    if tensor.elem_type not in _ONNX_TO_NUMPY:
        what = _UNSERVABLE.get(tensor.elem_type, f"element type {tensor.elem_type}")
        raise ModelLoadError(
            f"{role} {name} holds {what}, which JSON clients cannot send or read: "
            "export the model with float32/float16/integer/bool/string tensors at its edges"
        )
    shape: list[Dim] = []
    if tensor.HasField("shape"):
        for axis, dim in enumerate(tensor.shape.dim):
            if dim.HasField("dim_value") and dim.dim_value > 0:
                shape.append(int(dim.dim_value))
            elif _NAMED_DIM.search(dim.dim_param):
                shape.append(dim.dim_param)
            else:  # unnamed, -1, or "?" (Paddle's exporter writes "?" for every unknown size): not one shared size
                shape.append(f"{name}_{axis}")
    return TensorSpec(
        name=name, dtype=_ONNX_TO_NUMPY[tensor.elem_type], shape=tuple(shape), batch_axis=0 if shape else None
    )


def parse_batch_axes(texts: tuple[str, ...]) -> dict[str, int | None]:
    """`--batch-axis state=1 --batch-axis sr=none` as {name: axis or None}."""
    axes: dict[str, int | None] = {}
    for text in texts:
        name, sep, axis = text.rpartition("=")
        if not sep or not name or not (axis.isdigit() or axis.lower() == UNBATCHED):
            raise ModelLoadError(f"--batch-axis {text!r} must be NAME=AXIS (an integer) or NAME=none")
        axes[name] = None if axis.lower() == UNBATCHED else int(axis)
    return axes


def batch_symbol(specs: tuple[TensorSpec, ...]) -> str | None:
    """The symbolic dimension the inputs share most: the rows of a request (usually "batch")."""
    counts: Counter[str] = Counter()
    first: Counter[str] = Counter()
    for spec in specs:
        names = {d for d in spec.shape if isinstance(d, str)}
        counts.update(names)
        if spec.shape and isinstance(spec.shape[0], str):
            first[spec.shape[0]] += 1
    if not counts:
        return None
    return max(counts, key=lambda d: (counts[d], d.lower() in _BATCH_NAMES, first[d]))


def assign_input_axes(
    specs: tuple[TensorSpec, ...],
    overrides: Mapping[str, int | None],
    rows_in_data: Mapping[str, tuple[int, ...]] | None = None,
) -> tuple[TensorSpec, ...]:
    """Each input's batch axis: an override, else the shared batch dimension, else what the data says,
    else axis 0; scalars have none. A graph with only fixed shapes has a fixed batch on axis 0."""
    unknown = sorted(set(overrides) - {s.name for s in specs})
    if unknown:
        raise ModelLoadError(f"--batch-axis names {unknown}, but the model's inputs are {[s.name for s in specs]}")
    symbol = batch_symbol(specs)
    shared = symbol is not None and sum(symbol in spec.shape for spec in specs) > 1
    rows = _data_rows(rows_in_data) if rows_in_data else None
    assigned = []
    for spec in specs:
        if spec.name in overrides:
            axis = overrides[spec.name]
            if axis is not None and axis >= len(spec.shape):
                raise ModelLoadError(f"--batch-axis {spec.name}={axis}: the input has {len(spec.shape)} axes")
        elif not spec.shape:
            axis = None
        elif symbol is not None and symbol in spec.shape and (shared or len(specs) == 1 or spec.shape[0] == symbol):
            axis = spec.shape.index(symbol)
        elif shared and all(isinstance(d, int) for d in spec.shape):
            axis = None  # a fixed-shape input beside batched ones: given once per request
        elif rows is not None and rows_in_data and spec.name in rows_in_data:
            shape = rows_in_data[spec.name]
            axis = next((i for i, size in enumerate(shape) if size == rows), 0) if shape else None
        else:
            axis = 0
        assigned.append(_name_axis(replace(spec, batch_axis=axis)))
    return tuple(assigned)


def _data_rows(shapes: Mapping[str, tuple[int, ...]]) -> int | None:
    """The row count of the data: the size most arrays share on their first axis."""
    firsts = Counter(shape[0] for shape in shapes.values() if shape)
    return firsts.most_common(1)[0][0] if firsts else None


def _name_axis(spec: TensorSpec) -> TensorSpec:
    """Call the batch axis `batch` when it is symbolic, whatever the exporter named it."""
    if spec.batch_axis is None or isinstance(spec.shape[spec.batch_axis], int):
        return spec
    shape = list(spec.shape)
    shape[spec.batch_axis] = BATCH
    return replace(spec, shape=tuple(shape))


def unify_batch_name(specs: tuple[TensorSpec, ...], symbol: str | None) -> tuple[TensorSpec, ...]:
    """Rename every other use of the batch symbol to `batch`, so shared dimensions stay shared."""
    if symbol is None:
        return specs
    return tuple(replace(s, shape=tuple(BATCH if d == symbol else d for d in s.shape)) for s in specs)


@dataclass(frozen=True)
class Probe:
    """What the model really returned at two batch sizes: shapes per output."""

    small: dict[str, tuple[int, ...] | None]
    large: dict[str, tuple[int, ...] | None]
    small_rows: int
    large_rows: int | None


def assign_output_axes(
    outputs: tuple[TensorSpec, ...], probe: Probe, fixed_batch: int | None
) -> tuple[TensorSpec, ...]:
    """Each output's batch axis and real shape: the axis that grew with the rows (or, for a fixed-batch
    graph, the first axis of that size); declared dimensions the run contradicts become symbolic."""
    assigned = []
    for spec in outputs:
        small, large = probe.small.get(spec.name), probe.large.get(spec.name)
        if not spec.is_tensor:
            assigned.append(replace(spec, batch_axis=0))
            continue
        if small is None:
            assigned.append(spec)
            continue
        axis: int | None = None
        if large is not None and probe.large_rows is not None:
            grew = [
                i for i, (a, b) in enumerate(zip(small, large, strict=False)) if a != b and len(small) == len(large)
            ]
            axis = next((i for i in grew if small[i] == probe.small_rows and large[i] == probe.large_rows), None)
        elif fixed_batch is not None:
            axis = next((i for i, size in enumerate(small) if size == fixed_batch), None)
        shape = _observed_shape(spec, small, large, axis)
        assigned.append(replace(spec, shape=shape, batch_axis=axis))
    return tuple(assigned)


def _observed_shape(
    spec: TensorSpec, small: tuple[int, ...], large: tuple[int, ...] | None, axis: int | None
) -> tuple[Dim, ...]:
    declared = spec.shape if len(spec.shape) == len(small) else tuple(f"{spec.name}_{i}" for i in range(len(small)))
    shape: list[Dim] = []
    for i, (want, got) in enumerate(zip(declared, small, strict=True)):
        varies = large is not None and len(large) == len(small) and large[i] != got
        if i == axis:
            shape.append(BATCH if varies or isinstance(want, str) else want)
        elif isinstance(want, int) and (want != got or varies):
            shape.append(f"{spec.name}_{i}")
        else:
            shape.append(want)
    return tuple(shape)


def shapes_of(outputs: dict[str, Any]) -> dict[str, tuple[int, ...] | None]:
    return {name: (tuple(value.shape) if isinstance(value, np.ndarray) else None) for name, value in outputs.items()}


def parse_dims(texts: tuple[str, ...], inputs: tuple[TensorSpec, ...]) -> dict[str, DimBounds]:
    """`--dim seq=1:512` as bounds on the symbolic dimension `seq` (either end may be left out)."""
    symbolic = {
        d for spec in inputs for axis, d in enumerate(spec.shape) if isinstance(d, str) and axis != spec.batch_axis
    }
    bounds: dict[str, DimBounds] = {}
    for text in texts:
        name, sep, span = text.partition("=")
        low, colon, high = span.partition(":")
        try:
            if not (sep and colon):
                raise ValueError("expected NAME=MIN:MAX")
            bounds[name] = DimBounds(int(low) if low else 1, int(high) if high else None)
        except ValueError as exc:
            raise ModelLoadError(f"--dim {text!r} must be NAME=MIN:MAX, e.g. seq=1:512 ({exc})") from None
        if name not in symbolic:
            raise ModelLoadError(f"--dim {name}: the model's symbolic dimensions are {sorted(symbolic) or 'none'}")
    return bounds


_PASS_THROUGH = ("Cast", "Identity", "Unsqueeze", "Squeeze", "Reshape", "Flatten")


def index_ranges(path: Path, inputs: tuple[TensorSpec, ...]) -> tuple[TensorSpec, ...]:
    """Integer inputs that index a table (token ids into an embedding: Gather on axis 0 of a weight)
    get the valid range [0, rows - 1], so a request is checked, not wrapped (negative ids) or failed
    inside onnxruntime (ids past the end)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path), load_external_data=False).graph
    tables = {init.name: int(init.dims[0]) for init in graph.initializer if init.dims}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            value = numpy_helper.to_array(node.attribute[0].t)
            if value.ndim:
                tables[node.output[0]] = int(value.shape[0])
    source = {name: name for name in (s.name for s in inputs if s.dtype.startswith(("int", "uint")))}
    for node in graph.node:  # topological order: follow inputs through casts and reshapes
        if node.op_type in _PASS_THROUGH and node.input and node.input[0] in source:
            source[node.output[0]] = source[node.input[0]]
    rows: dict[str, int] = {}
    for node in graph.node:
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        if node.op_type == "Gather" and axis == 0 and len(node.input) == 2 and node.input[1] in source:
            table = tables.get(node.input[0])
            if table:
                name = source[node.input[1]]
                rows[name] = min(table, rows.get(name, table))
    return tuple(replace(spec, value_range=(0, rows[spec.name] - 1)) if spec.name in rows else spec for spec in inputs)


def read_metadata(path: Path) -> dict[str, str]:
    import onnx

    return {prop.key: prop.value for prop in onnx.load(str(path), load_external_data=False).metadata_props}


def ctc_charset(metadata: dict[str, str]) -> list[str] | None:
    """PaddleOCR recognizers carry their alphabet in metadata `character`, one per line, plus space."""
    text = metadata.get("character")
    if not text:
        return None
    return [*text.splitlines(), " "]


_TREE_PARAMETERS = ("nodes_values", "class_weights", "target_weights", "nodes_splits", "leaf_weights")


def count_parameters(path: Path) -> int:
    """Elements in the graph's weights: initializers and Constant tensors (in subgraphs too), split
    thresholds and leaf values of tree ensembles, coefficients of ai.onnx.ml linear models."""
    import onnx
    from onnx import numpy_helper

    def walk(graph: Any) -> int:
        total = sum(int(np.prod(init.dims)) for init in graph.initializer)
        for node in graph.node:
            for attribute in node.attribute:
                if node.op_type.startswith("TreeEnsemble") and attribute.name in _TREE_PARAMETERS:
                    total += len(attribute.floats) or len(attribute.ints)
                elif node.op_type in ("LinearClassifier", "LinearRegressor") and attribute.name in (
                    "coefficients",
                    "intercepts",
                ):
                    total += len(attribute.floats)
                elif node.op_type == "Constant" and attribute.name == "value":
                    total += int(numpy_helper.to_array(attribute.t).size)
                elif attribute.type == onnx.AttributeProto.GRAPH:
                    total += walk(attribute.g)
                elif attribute.type == onnx.AttributeProto.GRAPHS:
                    total += sum(walk(g) for g in attribute.graphs)
        return total

    return walk(onnx.load(str(path), load_external_data=False).graph)
