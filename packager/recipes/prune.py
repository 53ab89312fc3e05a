"""Structured pruning with Torch-Pruning (whole channels go, so the ONNX file really shrinks), then
distillation from the unpruned teacher to win back accuracy; and distillation into a user's student."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

from packager.errors import RecipeError
from packager.load import TorchModel
from packager.recipes.base import RecipeContext, Transform
from packager.recipes.distill import distill


def _export(module: object, teacher: TorchModel, target: Path) -> None:
    from packager.export import export_torch

    student = dataclasses.replace(teacher, module=module, source=f"{teacher.source} (student)")  # type: ignore[arg-type]
    export_torch(student, target, atol=1e-3)


def _needs_torch(ctx: RecipeContext, what: str) -> TorchModel:
    if ctx.torch_model is None:
        raise RecipeError(f"{what} works on the torch module: give the model as a factory file.py:function")
    return ctx.torch_model


class Prune(Transform):
    def __init__(self, ratio: float) -> None:
        self.ratio = ratio

    def apply(self, source: Path, target: Path, ctx: RecipeContext) -> None:
        import torch
        import torch_pruning as tp

        teacher = _needs_torch(ctx, "pruning")
        student = copy.deepcopy(teacher.module).eval()
        example = tuple(teacher.example_inputs.values())
        layers = [m for m in student.modules() if isinstance(m, torch.nn.Linear | torch.nn.Conv2d | torch.nn.Conv1d)]
        if not layers:
            raise RecipeError("found no Linear or Conv layer to prune")
        pruner = tp.pruner.MetaPruner(
            student,
            example,
            importance=tp.importance.GroupMagnitudeImportance(p=2),
            pruning_ratio=self.ratio,
            ignored_layers=[layers[-1]],
        )
        pruner.step()
        distill(teacher, student, ctx.train or ctx.calibration)
        _export(student, teacher, target)


class Student(Transform):
    def apply(self, source: Path, target: Path, ctx: RecipeContext) -> None:
        teacher = _needs_torch(ctx, "distillation")
        if ctx.student is None:
            raise RecipeError("the student recipe needs --student file.py:function returning the smaller module")
        student = copy.deepcopy(ctx.student.module)
        distill(teacher, student, ctx.train or ctx.calibration)
        _export(student, teacher, target)
