"""int8 quantization with onnxruntime.quantization: dynamic (weights only, activations at run time)
and static (calibrated activations, per-channel weights, QDQ)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from packager.recipes.base import RecipeContext, Transform, register

if TYPE_CHECKING:
    from packager.data import Dataset

CALIBRATION_ROWS = 256


@register
class Int8Dynamic(Transform):
    name = "int8-dynamic"
    summary = "int8 weights, activations quantized at run time (onnxruntime quantize_dynamic)"

    def apply(self, source: Path, target: Path, ctx: RecipeContext) -> None:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        prepared = _prepare(source, target)
        quantize_dynamic(str(prepared), str(target), weight_type=QuantType.QInt8, per_channel=False)
        prepared.unlink(missing_ok=True)


@register
class Int8Static(Transform):
    name = "int8-static"
    summary = "int8 weights per channel and calibrated int8 activations, QDQ format (quantize_static)"

    def apply(self, source: Path, target: Path, ctx: RecipeContext) -> None:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        prepared = _prepare(source, target)
        quantize_static(
            str(prepared),
            str(target),
            calibration_data_reader=_Reader(ctx.calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        )
        prepared.unlink(missing_ok=True)


def _prepare(source: Path, target: Path) -> Path:
    """onnxruntime's recommended pre-processing: shape inference, so every tensor's type is known."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = target.with_suffix(".pre.onnx")
    quant_pre_process(str(source), str(prepared), skip_optimization=True)
    return prepared


class _Reader(CalibrationDataReader):  # type: ignore[misc]
    """onnxruntime's CalibrationDataReader protocol over a Dataset, one row at a time."""

    def __init__(self, data: Dataset) -> None:
        super().__init__()
        head = data.head(CALIBRATION_ROWS)
        self._rows = iter(head.batches(1))

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._rows, None)
