"""int8 quantization with onnxruntime.quantization: dynamic (int8 weights, activations quantized at
run time), all ops or MatMul/Gemm only, and static (calibrated activations, per-channel weights, QDQ)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from packager.config import CalibrationMethod
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

        prepared = _prepare(source, target)
        quantize_dynamic(
            str(prepared),
            str(target),
            weight_type=QuantType.QInt8,
            per_channel=False,
            op_types_to_quantize=list(self.op_types) if self.op_types else None,
        )
        prepared.unlink(missing_ok=True)


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
            calibration_data_reader=_Reader(ctx.calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=methods[ctx.calibration_method],
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        )
        prepared.unlink(missing_ok=True)


def upgrade_opset(source: Path, target: Path, opset: int) -> Path:
    """Convert the default-domain opset up to `opset` when it is older; returns the file to use."""
    import onnx
    from onnx import version_converter

    model = onnx.load(str(source))
    current = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), opset)
    if current >= opset:
        return source
    upgraded = target.with_suffix(f".opset{opset}.onnx")
    onnx.save(version_converter.convert_version(model, opset), str(upgraded))
    return upgraded


def _prepare(source: Path, target: Path) -> Path:
    """onnxruntime's recommended pre-processing: shape inference, so every tensor's type is known."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = target.with_suffix(".pre.onnx")
    quant_pre_process(str(source), str(prepared), skip_optimization=True)
    return prepared


class _Reader(CalibrationDataReader):  # type: ignore[misc]
    """onnxruntime's CalibrationDataReader protocol over a Dataset, a few rows at a time."""

    def __init__(self, data: Dataset) -> None:
        super().__init__()
        self._rows = iter(data.head(CALIBRATION_ROWS).batches(8))

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._rows, None)
