"""torch -> ONNX with a dynamic batch axis, checked against torch before anything else uses it."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from packager.errors import ExportError
from packager.load import TorchModel

if TYPE_CHECKING:
    import onnx

OPSET = 20
PARITY_ATOL = 1e-4
BATCH_DIM = "batch"


@dataclass(frozen=True)
class ExportResult:
    path: Path
    max_abs_diff: float


def export_torch(model: TorchModel, path: Path, *, atol: float = PARITY_ATOL) -> ExportResult:
    import onnx
    import torch

    names = list(model.example_inputs)
    args = tuple(model.example_inputs.values())
    output_names = _output_names(model)
    dynamic = {name: {0: torch.export.Dim.DYNAMIC} for name in names}
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _quiet_loggers():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model.module,
                args,
                input_names=names,
                output_names=output_names,
                dynamic_shapes=dynamic,
                opset_version=OPSET,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"torch.onnx.export failed for {model.source}: {first}") from exc
    if program is None:
        raise ExportError(f"torch.onnx.export returned nothing for {model.source}")
    proto = program.model_proto
    _name_batch_axis(proto)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(path))
    diff = parity(model, path)
    if not diff <= atol:
        raise ExportError(
            f"the exported ONNX model differs from torch by {diff:.3g} (allowed {atol:g}); "
            "check for data-dependent control flow or randomness in forward()"
        )
    return ExportResult(path=path, max_abs_diff=diff)


def _output_names(model: TorchModel) -> list[str]:
    """The module's `output_names` attribute if it has one, else output / output_0, output_1, ..."""
    import torch

    declared = getattr(model.module, "output_names", None)
    if declared:
        return [str(name) for name in declared]
    with torch.no_grad():
        result = model.module(*model.example_inputs.values())
    if isinstance(result, torch.Tensor):
        return ["output"]
    return [f"output_{i}" for i in range(len(result))]


def parity(model: TorchModel, path: Path, batch: int = 3) -> float:
    """Max abs difference between torch and onnxruntime, at a batch size other than the example's."""
    import onnxruntime
    import torch

    generator = torch.Generator().manual_seed(0)
    feeds = {}
    for name, example in model.example_inputs.items():
        shape = (batch, *example.shape[1:])
        if example.dtype.is_floating_point:
            feeds[name] = torch.rand(shape, generator=generator, dtype=example.dtype)
        else:
            feeds[name] = example[:1].expand(shape).clone()
    with torch.no_grad():
        expected = model.module(*feeds.values())
    expected_list = [expected] if isinstance(expected, torch.Tensor) else list(expected)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {k: v.numpy() for k, v in feeds.items()})
    if len(got) != len(expected_list):
        raise ExportError(f"torch returns {len(expected_list)} outputs but the ONNX model {len(got)}")
    return max(float(np.max(np.abs(g - e.numpy()), initial=0.0)) for g, e in zip(got, expected_list, strict=True))


def _name_batch_axis(proto: onnx.ModelProto) -> None:
    """The exporter names the dynamic axis s0, s77, ...: call it what it is."""
    graph = proto.graph
    symbols = {
        value.type.tensor_type.shape.dim[0].dim_param
        for value in graph.input
        if value.type.tensor_type.shape.dim and value.type.tensor_type.shape.dim[0].dim_param
    }
    for value in [*graph.input, *graph.output, *graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in symbols:
                dim.dim_param = BATCH_DIM


@contextlib.contextmanager
def _quiet_loggers() -> Iterator[None]:
    """The exporter logs progress and optional-op notes; the packager reports what matters itself."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch._dynamo", "torch.export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
