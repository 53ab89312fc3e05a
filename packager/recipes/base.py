"""The recipe interface: a transform takes an ONNX file and writes a smaller or faster one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from packager.config import CalibrationMethod
from packager.data import Dataset
from packager.errors import RecipeError
from packager.load import TorchModel


@dataclass(frozen=True)
class RecipeContext:
    work_dir: Path
    calibration: Dataset
    calibration_method: CalibrationMethod = CalibrationMethod.MINMAX
    torch_model: TorchModel | None = None
    """The user's torch module, when they gave a factory: pruning and distillation start from it."""
    train: Dataset | None = None
    """Inputs for distillation (no labels needed); the calibration inputs when absent."""
    student: TorchModel | None = None


class Transform(ABC):
    name: ClassVar[str]
    summary: ClassVar[str]
    works_on_torch: ClassVar[bool] = False
    """True for steps that rebuild the torch module (pruning, distillation): they must come first."""

    @abstractmethod
    def apply(self, source: Path, target: Path, ctx: RecipeContext) -> None:
        """Read `source`, write the transformed model to `target`."""


TRANSFORMS: dict[str, Callable[[], Transform]] = {}
BASELINE = "fp32"
"""The exported (or given) model, untouched: every candidate is measured against it."""


def register(cls: type[Transform]) -> type[Transform]:
    TRANSFORMS[cls.name] = cls
    return cls


def register_factory(name: str, factory: Callable[[], Transform]) -> None:
    """For parameterised transforms: `prune-0.5` is Prune(ratio=0.5)."""
    TRANSFORMS[name] = factory


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
        late = [step for step in steps[1:] if TRANSFORMS[step]().works_on_torch]
        if late:
            raise RecipeError(f"{', '.join(late)} rebuilds the torch model, so it must be the first step of {text}")
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
