"""int8 quantization with onnxruntime.quantization: dynamic (int8 weights, activations quantized at
run time), all ops or MatMul/Gemm only, and static (calibrated activations, per-channel weights) in
the configurations that matter for speed on the target CPU, each a `StaticScheme`.

Which configuration is fast depends on the CPU's int8 kernels, so lambdafit measures rather than
assumes: on x86_64 (onnxruntime 1.32) unsigned activations with signed weights (U8S8) let the QDQ
fusions turn Conv and MatMul into integer kernels (VPDPBUSD with VNNI, VPMADDUBSW on AVX2), while
signed activations (S8S8) leave many Convs in fp32 between Q/DQ pairs; Arm's dot-product kernels take
both. `--recipes auto` offers both and the fitter keeps the faster at equal quality. The fusions need
graph optimization EXTENDED or higher, which the handler's session (ORT_ENABLE_ALL) has.

All static schemes of one model share one calibration (the activation ranges do not depend on the
integer types): the first computes it, the others read onnxruntime's calibration cache.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from handlers.errors import reason
from packager.config import CalibrationMethod
from packager.errors import RecipeError
from packager.recipes.base import RecipeContext, Transform

if TYPE_CHECKING:
    from packager.data import Dataset

CALIBRATION_ROWS = 256
QDQ_MIN_OPSET = 13
"""Per-channel QDQ needs an axis on QuantizeLinear/DequantizeLinear, which arrived in opset 13."""


class _Int8Dynamic(Transform):
    op_types: ClassVar[tuple[str, ...] | None]

    def apply(self, source: Path, target: Path, ctx: RecipeContext) -> None:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        prepared = _prepare(upgrade_opset(source, target, QDQ_MIN_OPSET), target)
        if not _quantizable(prepared):
            raise RecipeError("the graph has no Conv, MatMul or Gemm weights to quantize")
        quantize_dynamic(
            str(prepared),
            str(target),
            weight_type=QuantType.QInt8,
            per_channel=False,
            op_types_to_quantize=list(self.op_types) if self.op_types else None,
            extra_options={"EnableSubgraph": True},  # weights inside If/Loop branches (silero-vad) too
        )
        _cleanup(prepared, source)
        _require_quantized(target, "dynamic")


class Int8Dynamic(_Int8Dynamic):
    op_types = None


class Int8DynamicMatMul(_Int8Dynamic):
    op_types = ("MatMul", "Gemm")


class IntType(StrEnum):
    U8 = "uint8"
    S8 = "int8"


class Format(StrEnum):
    QDQ = "qdq"
    """QuantizeLinear/DequantizeLinear pairs around float ops; onnxruntime fuses them at session creation."""
    QOPERATOR = "qoperator"
    """Integer operators (QLinearConv, QLinearMatMul, ...) written into the graph."""


@dataclass(frozen=True)
class StaticScheme:
    """One configuration of calibrated int8: what `quantize_static` is asked for."""

    activations: IntType
    weights: IntType = IntType.S8
    format: Format = Format.QDQ
    per_channel: bool = True
    reduce_range: bool = False
    """7-bit weights: U8S8 products cannot saturate VPMADDUBSW's int16 sums on CPUs without VNNI."""

    def __post_init__(self) -> None:
        if self.format is Format.QOPERATOR and self.activations is IntType.S8 and self.weights is IntType.U8:
            raise RecipeError("onnxruntime has no QOperator kernels for int8 activations with uint8 weights")

    @property
    def label(self) -> str:
        kind = {IntType.U8: "U8", IntType.S8: "S8"}
        return f"{kind[self.activations]}{kind[self.weights]}"

    def describe(self) -> str:
        weights = "7-bit" if self.reduce_range else ("per-channel" if self.per_channel else "per-tensor")
        return f"{self.label} {self.format.value.upper()}, {weights} weights"


class Int8Static(Transform):
    """Calibrated int8 in one `StaticScheme` (a registry line passes the scheme's fields)."""

    def __init__(
        self,
        activations: str = IntType.U8,
        weights: str = IntType.S8,
        format: str = Format.QDQ,
        reduce_range: bool = False,
    ) -> None:
        self.scheme = StaticScheme(IntType(activations), IntType(weights), Format(format), reduce_range=reduce_range)

    def apply(self, source: Path, target: Path, ctx: RecipeContext) -> None:
        from onnxruntime.quantization import CalibrationMethod as OrtMethod
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

        methods = {
            CalibrationMethod.MINMAX: OrtMethod.MinMax,
            CalibrationMethod.ENTROPY: OrtMethod.Entropy,
            CalibrationMethod.PERCENTILE: OrtMethod.Percentile,
        }
        types = {IntType.U8: QuantType.QUInt8, IntType.S8: QuantType.QInt8}
        formats = {Format.QDQ: QuantFormat.QDQ, Format.QOPERATOR: QuantFormat.QOperator}
        scheme = self.scheme
        prepared = _prepared(source, ctx)
        quantize_static(
            str(prepared),
            str(target),
            calibration_data_reader=CalibrationReader(ctx.calibration, ctx.calibration_rows),
            quant_format=formats[scheme.format],
            per_channel=scheme.per_channel,
            reduce_range=scheme.reduce_range,
            activation_type=types[scheme.activations],
            weight_type=types[scheme.weights],
            calibrate_method=methods[ctx.calibration_method],
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": scheme.weights is IntType.S8},
            calibration_cache_path=prepared.with_name(f"{prepared.stem}.{ctx.calibration_method.value}.ranges.json"),
        )
        _require_quantized(target, "static")  # the prepared input stays: the other schemes share it


def _prepared(source: Path, ctx: RecipeContext) -> Path:
    """The step's input at the opset QDQ needs, pre-processed: once per input, for every static scheme."""
    done = ctx.quantization_inputs.get(source)
    if done is not None and done.is_file():
        return done
    stem = ctx.work_dir / f"{source.stem}-int8-input.onnx"
    prepared = _prepare(upgrade_opset(source, stem, QDQ_MIN_OPSET), stem)
    ctx.quantization_inputs[source] = prepared
    return prepared


def upgrade_opset(source: Path, target: Path, opset: int) -> Path:
    """Convert the default-domain opset up to `opset` when it is older; returns the file to use."""
    import onnx
    from onnx import version_converter

    model = onnx.load(str(source))
    current = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), opset)
    if current >= opset:
        return source
    if model.ir_version < 4:  # IR 3 wants initializers listed as graph inputs, which slimming removes
        model.ir_version = 4
    try:
        upgraded_model = version_converter.convert_version(model, opset)
    except Exception as exc:
        raise RecipeError(f"cannot convert opset {current} to {opset} for quantization: {reason(exc)}") from exc
    upgraded = target.with_suffix(f".opset{opset}.onnx")
    onnx.save(upgraded_model, str(upgraded))
    return upgraded


def _prepare(source: Path, target: Path) -> Path:
    """onnxruntime's recommended pre-processing, so every tensor's type is known. Its symbolic shape
    inference gives up on many real graphs ("Incomplete symbolic shape inference"): then ONNX shape
    inference alone, and failing that the graph as it is (the quantizers infer what they need)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = target.with_suffix(".pre.onnx")
    scratch = target.with_name(target.name + ".scratch")
    scratch.mkdir(exist_ok=True)
    try:
        for options in ({}, {"skip_symbolic_shape": True}):
            try:
                # When it gives up, the symbolic pass saves its partial graph (and external data) into the
                # current folder: let that be a scratch folder, not the user's.
                with contextlib.chdir(scratch):
                    quant_pre_process(str(source.resolve()), str(prepared.resolve()), skip_optimization=True, **options)
                return prepared
            except Exception:
                continue
        return source
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _cleanup(prepared: Path, source: Path) -> None:
    """Intermediate files of a recipe step go; the step's input stays (other chains start from it)."""
    for path in (prepared, prepared.with_name(prepared.name.replace(".pre.onnx", f".opset{QDQ_MIN_OPSET}.onnx"))):
        if path != source and path.exists():
            path.unlink()


QUANTIZED_OPS = frozenset(
    {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger",
     "DynamicQuantizeMatMul", "QLinearConv", "QLinearMatMul", "QGemm", "DynamicQuantizeLSTM"}
)  # fmt: skip
"""Ops onnxruntime's quantizers write: a graph with none of them was left in float."""


def _require_quantized(path: Path, kind: str) -> None:
    """A quantizer that quantized nothing returns the float graph: that is no int8 candidate. It
    happens when every weight op sits inside If/Loop subgraphs, which QDQ quantization does not reach."""
    from packager.recipes.auto import op_counts

    inside = op_counts(path)
    if any(inside[op] for op in QUANTIZED_OPS):
        return
    where = (
        " (they sit inside If/Loop subgraphs, which it does not reach: try int8-dynamic)"
        if kind == "static" and _weights_only_in_subgraphs(path)
        else ""
    )
    raise RecipeError(f"onnxruntime's {kind} quantizer left every weight in float{where}")


def _weights_only_in_subgraphs(path: Path) -> bool:
    import onnx

    from packager.recipes.auto import WEIGHT_OPS

    graph = onnx.load(str(path), load_external_data=False).graph
    return not any(node.op_type in WEIGHT_OPS for node in graph.node)


def _quantizable(path: Path) -> bool:
    from packager.recipes.auto import weight_ops

    return weight_ops(path) > 0


class CalibrationReader(CalibrationDataReader):  # type: ignore[misc]
    """onnxruntime's CalibrationDataReader protocol over a Dataset, a few rows at a time."""

    def __init__(self, data: Dataset, rows: int) -> None:
        super().__init__()
        self._rows = iter(data.head(CALIBRATION_ROWS).batches(rows))

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._rows, None)
