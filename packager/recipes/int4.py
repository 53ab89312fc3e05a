"""int4 weight-only quantization of MatMul weights (MatMulNBits), for transformer-style models."""

from __future__ import annotations

from pathlib import Path

from packager.errors import RecipeError
from packager.recipes.base import RecipeContext, Transform

BLOCK_SIZE = 32


class Int4WeightOnly(Transform):
    def apply(self, source: Path, target: Path, ctx: RecipeContext) -> None:
        import onnx
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

        model = onnx.load(str(source))
        quantizer = MatMulNBitsQuantizer(model, bits=4, block_size=BLOCK_SIZE, is_symmetric=True, accuracy_level=4)
        quantizer.process()
        result = quantizer.model.model
        if not any(node.op_type == "MatMulNBits" for node in result.graph.node):
            raise RecipeError("int4 found no MatMul with constant weights to quantize (it suits transformer models)")
        onnx.save(result, str(target))
