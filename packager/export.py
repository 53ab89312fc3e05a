"""torch -> ONNX, checked against torch before anything else uses it.

Outputs of any shape torch code returns (a tensor, a tuple, a dict, a dataclass, a Hugging Face
`ModelOutput`) are flattened into named tensors. The batch axis is dynamic, and so are the axes the
factory declares or that differ between its two examples; integer inputs shaped [batch, seq] (token
ids) get a dynamic sequence too. The dynamo exporter goes first; when it fails or its graph disagrees
with torch, the TorchScript exporter; the error, if both fail, says why each did.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from handlers.errors import reason
from packager import interrupt
from packager.errors import ExportError
from packager.load import TorchModel

if TYPE_CHECKING:
    import onnx
    import torch

OPSET = 20
TORCHSCRIPT_OPSET = 17
PARITY_ATOL = 1e-4
BATCH_DIM = "batch"
SEQUENCE_DIM = "sequence"
"""The name of the dynamic second axis of integer [batch, seq] inputs (token ids)."""
SEQUENCE_MAX = 4096
"""Upper bound on an inferred sequence axis when the module's config does not say (dynamo needs one)."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    max_abs_diff: float
    notes: tuple[str, ...] = ()


class _Flat:
    """Wraps a module so that it takes its inputs positionally and returns a flat tuple of tensors."""

    @staticmethod
    def wrap(model: TorchModel, module: torch.nn.Module) -> torch.nn.Module:
        import torch

        class Flat(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = module

            def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
                return tuple(value for _, value in flatten(model.call(self.inner, tensors)))

        return Flat().eval()


def flatten(result: Any, prefix: str = "") -> list[tuple[str, torch.Tensor]]:
    """Named tensors of any output structure, in a fixed order (None entries dropped)."""
    import torch

    if isinstance(result, torch.Tensor):
        return [(prefix or "output", result)]
    if result is None:
        return []
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        items = [(f.name, getattr(result, f.name)) for f in dataclasses.fields(result)]
    elif isinstance(result, dict):
        items = [(str(k), v) for k, v in result.items()]
    elif isinstance(result, tuple | list):
        items = [(f"output_{i}" if not prefix else str(i), v) for i, v in enumerate(result)]
    else:
        raise ExportError(f"forward() returned a {type(result).__name__}; return tensors, or tuples or dicts of them")
    named: list[tuple[str, torch.Tensor]] = []
    for key, value in items:
        named += flatten(value, f"{prefix}_{key}" if prefix else key)
    return named


def export_torch(model: TorchModel, path: Path, *, atol: float = PARITY_ATOL) -> ExportResult:
    import torch

    try:
        with torch.no_grad():
            outputs = flatten(model.call(model.module, list(model.example_inputs.values())))
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(f"{model.source}: forward() fails on the factory's example inputs: {reason(exc)}. "
                          f"{_example_hint(model)}") from exc  # fmt: skip
    if not outputs:
        raise ExportError(f"{model.source}: forward() returned no tensors")
    names = list(model.output_names or [name for name, _ in outputs])
    if len(names) != len(outputs):
        raise ExportError(f"{model.source}: output_names has {len(names)} names for {len(outputs)} outputs")
    dynamic = dynamic_axes(model)
    failures: list[str] = []
    batch_only = {name: {a: label for a, label in axes.items() if label == BATCH_DIM} for name, axes in dynamic.items()}
    attempts = [("dynamo", dynamic), ("dynamo, batch axis only", batch_only), ("TorchScript", dynamic)]
    for label, axes in attempts:
        if label.startswith("dynamo, batch") and axes == dynamic:
            continue
        try:
            _export(model, path, names, axes, dynamo=not label.startswith("TorchScript"))
            diff = parity(model, path, axes)
        except ExportError as exc:
            interrupt.check()  # a signal torch swallowed (an interrupted lazy import) is no failed export
            failures.append(f"{label}: {exc}")
            continue
        if diff <= atol:
            notes = () if not failures else (f"exported with the {label} exporter ({'; '.join(failures)})",)
            return ExportResult(path=path, max_abs_diff=diff, notes=notes)
        failures.append(f"{label}: the graph differs from torch by {diff:.3g} (allowed {atol:g})")
    raise ExportError(
        f"torch.onnx.export failed for {model.source}: {' | '.join(failures)}. Check forward() for data-dependent "
        "control flow or randomness, or export the model to ONNX yourself and pack the .onnx file"
    )


def _example_hint(model: TorchModel) -> str:
    """What the examples are against what the weights are: the usual mistake is float64 examples."""
    examples = ", ".join(
        f"{name} {str(t.dtype).removeprefix('torch.')}{list(t.shape)}" for name, t in model.example_inputs.items()
    )
    weights = sorted({str(p.dtype).removeprefix("torch.") for p in model.module.parameters()})
    held = f" and the weights are {'/'.join(weights)}" if weights else ""
    return (
        f"The examples are {examples}{held}: give examples of the dtype and shape forward() takes (e.g. tensor.float())"
    )


def dynamic_axes(model: TorchModel) -> dict[str, dict[int, str]]:
    """Batch on axis 0 for every input; declared axes; the sequence axis of [batch, seq] integer inputs."""
    import torch

    axes: dict[str, dict[int, str]] = {}
    declares_batch = any(BATCH_DIM in declared.values() for declared in model.dynamic_axes.values())
    for name, tensor in model.example_inputs.items():
        declared = model.dynamic_axes.get(name, {})
        if declares_batch or not tensor.dim():
            axes[name] = dict(declared)  # the factory says where the batch is (a seq-first RNN: axis 1)
            continue
        axes[name] = {0: BATCH_DIM} | declared
        if tensor.dim() == 2 and not tensor.dtype.is_floating_point and tensor.dtype != torch.bool:
            axes[name].setdefault(1, SEQUENCE_DIM)
    return axes


def _export(model: TorchModel, path: Path, names: list[str], axes: dict[str, dict[int, str]], *, dynamo: bool) -> None:
    import onnx
    import torch

    inputs = list(model.example_inputs)
    example = tuple(_widen(tensor, axes.get(name, {})) for name, tensor in model.example_inputs.items())
    flat = _Flat.wrap(model, model.module)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _quiet_loggers():
            warnings.simplefilter("ignore")
            if dynamo:
                shared: dict[str, Any] = {}
                shapes = tuple(
                    {axis: _dim(label, model, shared) for axis, label in axes.get(name, {}).items()} for name in inputs
                )
                program = torch.onnx.export(
                    flat, example, input_names=inputs, output_names=names, dynamic_shapes=(shapes,),
                    opset_version=OPSET, dynamo=True, external_data=False, verbose=False,
                )  # fmt: skip
                if program is None:
                    raise ExportError("the exporter returned nothing")
                proto = program.model_proto
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.onnx.export(
                    flat, example, str(path), input_names=inputs, output_names=names, dynamic_axes=axes,
                    opset_version=TORCHSCRIPT_OPSET, dynamo=False,
                )  # fmt: skip
                proto = onnx.load(str(path))
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(_root_cause(exc)) from exc
    _name_axes(proto, axes)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(path))


def _dim(label: str, model: TorchModel, shared: dict[str, Any]) -> Any:
    """One dimension object per label, so inputs that share a sequence axis share it in the graph."""
    import torch

    if label != SEQUENCE_DIM:
        return torch.export.Dim.DYNAMIC
    if label not in shared:
        config = getattr(model.module, "config", None)
        limit = int(getattr(config, "max_position_embeddings", 0) or SEQUENCE_MAX)
        shared[label] = torch.export.Dim(SEQUENCE_DIM, min=1, max=limit)
    return shared[label]


def _widen(tensor: torch.Tensor, axes: dict[int, str]) -> torch.Tensor:
    """An example of size 1 on a dynamic axis makes the exporter fix it at 1: give it two rows."""
    for axis in axes:
        if tensor.shape[axis] == 1:
            tensor = tensor.expand(*[2 if i == axis else -1 for i in range(tensor.dim())]).contiguous()
    return tensor


def _root_cause(error: BaseException) -> str:
    """The exporter's own first line and the innermost cause's, plain: torch prefixes a banner."""
    causes = [error]
    while causes[-1].__cause__ is not None and len(causes) < 10:
        causes.append(causes[-1].__cause__)  # type: ignore[arg-type]
    first, last = reason(error), reason(causes[-1])
    return first if first == last else f"{first} (caused by {type(causes[-1]).__name__}: {last})"


def parity(model: TorchModel, path: Path, axes: dict[str, dict[int, str]], batch: int = 3) -> float:
    """Max abs difference between torch and onnxruntime at a batch size other than the example's, and
    with every other dynamic axis at another size too."""
    import onnxruntime
    import torch

    generator = torch.Generator().manual_seed(0)
    feeds = {}
    for name, example in model.example_inputs.items():
        sizes = list(example.shape)
        for axis, label in axes.get(name, {}).items():
            sizes[axis] = batch if label == BATCH_DIM else max(2, sizes[axis] + 3)
        if example.dtype.is_floating_point:
            feeds[name] = torch.rand(sizes, generator=generator, dtype=example.dtype)
        else:
            index = [torch.arange(size) % example.shape[axis] for axis, size in enumerate(sizes)]
            feeds[name] = example[tuple(torch.meshgrid(*index, indexing="ij"))] if index else example.clone()
    try:
        with torch.no_grad():
            expected = [t for _, t in flatten(model.call(model.module, list(feeds.values())))]
    except Exception as exc:
        raise ExportError(f"torch itself fails at the test shapes: {reason(exc)}") from exc
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(None, {k: v.numpy() for k, v in feeds.items()})
    except Exception as exc:
        raise ExportError(f"onnxruntime cannot run the exported graph at other shapes: {reason(exc)}") from exc
    if len(got) != len(expected):
        raise ExportError(f"torch returns {len(expected)} outputs but the ONNX model {len(got)}")
    diffs = []
    for g, e in zip(got, expected, strict=True):
        if g.shape != tuple(e.shape):
            raise ExportError(f"an output is shaped {list(g.shape)} in ONNX but {list(e.shape)} in torch")
        diffs.append(_max_difference(np.asarray(g, dtype=np.float64), e.double().numpy()))
    return max(diffs)


def _max_difference(got: np.ndarray, want: np.ndarray) -> float:
    """Largest difference, absolute for values below 1 and relative above (float32 keeps ~7 digits
    whatever the magnitude); equal infinities and NaN in both count as agreement."""
    with np.errstate(invalid="ignore", over="ignore"):
        same = (got == want) | (np.isnan(got) & np.isnan(want))
        scaled = np.abs(got - want) / np.maximum(1.0, np.abs(want))
        return float(np.max(np.where(same, 0.0, scaled), initial=0.0))


def _name_axes(proto: onnx.ModelProto, axes: dict[str, dict[int, str]]) -> None:
    """The exporter names dynamic axes s0, s77, ...: call them what they are (batch, sequence)."""
    graph = proto.graph
    renames: dict[str, str] = {}
    for value in graph.input:
        for axis, label in axes.get(value.name, {}).items():
            dims = value.type.tensor_type.shape.dim
            if axis < len(dims) and dims[axis].dim_param:
                renames.setdefault(dims[axis].dim_param, label)
    for value in [*graph.input, *graph.output, *graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in renames:
                dim.dim_param = renames[dim.dim_param]


@contextlib.contextmanager
def _quiet_loggers() -> Iterator[None]:
    """The exporter logs progress and optional-op notes; the packager reports what matters itself."""
    loggers = [logging.getLogger(name) for name in ("torch", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)  # a failed attempt is reported by the packager, with its cause
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
