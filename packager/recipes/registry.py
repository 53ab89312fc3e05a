"""The recipe steps lambdafit knows, by name: an explicit map, read without importing any transform.

A recipe chains steps with '+' (`slim+int8-static`); `fp32` is the empty chain. A new technique is one
module with a `Transform` and one line here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from packager.errors import RecipeError

if TYPE_CHECKING:
    from packager.recipes.base import Transform

BASELINE = "fp32"
"""The exported (or given) model, untouched: every candidate is measured against it."""


@dataclass(frozen=True)
class Step:
    name: str
    module: str
    attribute: str
    summary: str
    works_on_torch: bool = False
    """Steps that rebuild the torch module (pruning, distillation) must come first in a chain."""
    args: tuple[Any, ...] = ()

    def build(self) -> Transform:
        transform: Transform = getattr(importlib.import_module(self.module), self.attribute)(*self.args)
        return transform


def _prune(ratio: float) -> Step:
    return Step(
        f"prune-{ratio}",
        "packager.recipes.prune",
        "Prune",
        f"structured channel pruning of {ratio:.0%} (Torch-Pruning, L2 group magnitude) + distillation from the teacher",
        works_on_torch=True,
        args=(ratio,),
    )


STEPS: dict[str, Step] = {
    step.name: step
    for step in (
        Step("slim", "packager.recipes.slim", "Slim", "onnxslim graph slimming (constant folding, fusion, dead nodes)"),
        Step("fp16", "packager.recipes.fp16", "Fp16", "float16 weights and activations, fp32 at the graph's edges"),
        Step(
            "int8-dynamic",
            "packager.recipes.quantize",
            "Int8Dynamic",
            "onnxruntime's default dynamic int8: every supported op (Conv, MatMul, Gemm, Gather, ...)",
        ),
        Step(
            "int8-dynamic-matmul",
            "packager.recipes.quantize",
            "Int8DynamicMatMul",
            "dynamic int8 of MatMul and Gemm only: linear layers, convolutions left in fp32",
        ),
        Step(
            "int8-static",
            "packager.recipes.quantize",
            "Int8Static",
            "calibrated uint8 activations, int8 weights per channel, QDQ (U8S8: fuses into integer kernels on x86_64)",
            args=("uint8", "int8", "qdq"),
        ),
        Step(
            "int8-static-s8s8",
            "packager.recipes.quantize",
            "Int8Static",
            "calibrated int8 activations, int8 weights per channel, QDQ (S8S8: onnxruntime's default, Arm's sdot)",
            args=("int8", "int8", "qdq"),
        ),
        Step(
            "int8-static-qop",
            "packager.recipes.quantize",
            "Int8Static",
            "U8S8 per channel as integer operators (QLinearConv, QLinearMatMul) instead of QDQ pairs",
            args=("uint8", "int8", "qoperator"),
        ),
        Step(
            "int8-static-7bit",
            "packager.recipes.quantize",
            "Int8Static",
            "U8S8 QDQ with 7-bit weights: no int16 saturation on x86_64 CPUs without VNNI (AVX2 only)",
            args=("uint8", "int8", "qdq", True),
        ),
        Step("int4", "packager.recipes.int4", "Int4WeightOnly", "4-bit MatMul weights in blocks of 32 (MatMulNBits)"),
        _prune(0.25),
        _prune(0.5),
        _prune(0.75),
        Step(
            "student",
            "packager.recipes.prune",
            "Student",
            "distill the teacher into the architecture given with --student",
            works_on_torch=True,
        ),
    )
}


def check_recipe(text: str) -> tuple[str, ...]:
    """The steps of recipe `text`, or a RecipeError that lists the known ones."""
    text = text.strip()
    if text == BASELINE:
        return ()
    steps = tuple(step.strip() for step in text.split("+"))
    unknown = [step for step in steps if step not in STEPS]
    if unknown:
        raise RecipeError(
            f"unknown recipe step {', '.join(unknown)}: known steps are {', '.join(sorted(STEPS))}, "
            f"chained with '+' (e.g. slim+int8-static), or {BASELINE}"
        )
    late = [step for step in steps[1:] if STEPS[step].works_on_torch]
    if late:
        raise RecipeError(f"{', '.join(late)} rebuilds the torch model, so it must be the first step of {text}")
    return steps
