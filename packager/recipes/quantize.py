"""int8 quantization with onnxruntime.quantization: dynamic (int8 weights, activations quantized at
run time), all ops or MatMul/Gemm only, and static (calibrated activations, per-channel weights, QDQ)."""

from __future__ import annotations

import contextlib
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
        )
        _cleanup(prepared, source)


class Int8Dynamic(_Int8Dynamic):
    op_types = None


class Int8DynamicMatMul(_Int8Dynamic):
    op_types = ("MatMul", "Gemm")


class Int8Static(Transform):
    def apply(self, source: Path, target: Path, ctx: RecipeContext) -> None:
        from onnxruntime.quantization import CalibrationMethod as OrtMethod
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

        methods = {
            CalibrationMethod.MINMAX: OrtMethod.MinMax,
            CalibrationMethod.ENTROPY: OrtMethod.Entropy,
            CalibrationMethod.PERCENTILE: OrtMethod.Percentile,
        }
        prepared = _prepare(upgrade_opset(source, target, QDQ_MIN_OPSET), target)
        quantize_static(
            str(prepared),
            str(target),
            calibration_data_reader=_Reader(ctx.calibration, ctx.calibration_rows),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=methods[ctx.calibration_method],
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        )
        _cleanup(prepared, source)


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
    for options in ({}, {"skip_symbolic_shape": True}):
        try:
            # Its symbolic shape inference writes sym_shape_infer_temp.onnx into the working folder when
            # it gives up: let that be the pack's own temporary folder, not the user's.
            with contextlib.chdir(prepared.parent):
                quant_pre_process(str(source.resolve()), str(prepared.resolve()), skip_optimization=True, **options)
            return prepared
        except Exception:
            continue
    return source


def _cleanup(prepared: Path, source: Path) -> None:
    """Intermediate files of a recipe step go; the step's input stays (other chains start from it)."""
    for path in (prepared, prepared.with_name(prepared.name.replace(".pre.onnx", f".opset{QDQ_MIN_OPSET}.onnx"))):
        if path != source and path.exists():
            path.unlink()


def _quantizable(path: Path) -> bool:
    from packager.recipes.auto import weight_ops

    return weight_ops(path) > 0


class _Reader(CalibrationDataReader):  # type: ignore[misc]
    """onnxruntime's CalibrationDataReader protocol over a Dataset, a few rows at a time."""

    def __init__(self, data: Dataset, rows: int) -> None:
        super().__init__()
        self._rows = iter(data.head(CALIBRATION_ROWS).batches(rows))

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._rows, None)
