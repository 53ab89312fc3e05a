"""The recipe interface: a transform takes an ONNX file and writes a smaller or faster one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from packager.data import Dataset
from packager.errors import RecipeError


@dataclass(frozen=True)
class RecipeContext:
    work_dir: Path
    calibration: Dataset


class Transform(ABC):
    name: ClassVar[str]
    summary: ClassVar[str]

    @abstractmethod
    def apply(self, source: Path, target: Path, ctx: RecipeContext) -> None:
        """Read `source`, write the transformed model to `target`."""


TRANSFORMS: dict[str, type[Transform]] = {}
BASELINE = "fp32"
"""The exported (or given) model, untouched: every candidate is measured against it."""


def register(cls: type[Transform]) -> type[Transform]:
    TRANSFORMS[cls.name] = cls
    return cls


@dataclass(frozen=True)
class Recipe:
    """A chain of transforms, written `slim+int8-static`; `fp32` is the empty chain."""

    steps: tuple[str, ...]

    @property
    def name(self) -> str:
        return "+".join(self.steps) or BASELINE

    @classmethod
    def parse(cls, text: str) -> Recipe:
        text = text.strip()
        if text == BASELINE:
            return cls(())
        steps = tuple(step.strip() for step in text.split("+"))
        unknown = [step for step in steps if step not in TRANSFORMS]
        if unknown:
            raise RecipeError(
                f"unknown recipe step {', '.join(unknown)}: known steps are {', '.join(sorted(TRANSFORMS))}, "
                f"chained with '+' (e.g. slim+int8-static), or {BASELINE}"
            )
        return cls(steps)

    def apply(self, source: Path, ctx: RecipeContext) -> Path:
        current = source
        for index, step in enumerate(self.steps):
            target = ctx.work_dir / f"{self.name}.{index}.{step}.onnx"
            try:
                TRANSFORMS[step]().apply(current, target, ctx)
            except RecipeError:
                raise
            except Exception as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise RecipeError(f"recipe step {step} failed: {first}") from exc
            current = target
        return current
