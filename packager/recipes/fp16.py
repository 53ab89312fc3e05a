"""fp16 weights and compute, with fp32 inputs and outputs so clients send the same JSON."""

from __future__ import annotations

from pathlib import Path

from packager.recipes.base import RecipeContext, Transform


class Fp16(Transform):
    def apply(self, source: Path, target: Path, ctx: RecipeContext) -> None:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        model = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
        onnx.save(model, str(target))
