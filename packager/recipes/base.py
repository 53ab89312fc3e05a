"""The recipe interface: a transform takes an ONNX file and writes a smaller or faster one; a recipe
chains transforms, and every prefix of a chain is computed once per pack."""

from __future__ import annotations

import contextlib
import traceback
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from handlers.errors import reason
from packager.config import CalibrationMethod
from packager.data import Dataset
from packager.errors import RecipeError
from packager.load import TorchModel
from packager.recipes.registry import BASELINE, STEPS, check_recipe


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
    calibration_rows: int = 8
    """Rows per calibration batch: the graph's own batch when it is fixed."""
    done: dict[tuple[str, ...], Path | RecipeError] = field(default_factory=dict)
    """Each chain prefix already computed (or failed), so `slim` runs once for every `slim+X`."""
    quantization_inputs: dict[Path, Path] = field(default_factory=dict)
    """Each step input at the opset QDQ needs and pre-processed, so every static int8 scheme reuses it."""


class Transform(ABC):
    @abstractmethod
    def apply(self, source: Path, target: Path, ctx: RecipeContext) -> None:
        """Read `source`, write the transformed model to `target`."""


@dataclass(frozen=True)
class Recipe:
    """A chain of transforms, written `slim+int8-static`; `fp32` is the empty chain."""

    steps: tuple[str, ...]

    @property
    def name(self) -> str:
        return "+".join(self.steps) or BASELINE

    @classmethod
    def parse(cls, text: str) -> Recipe:
        return cls(check_recipe(text))

    def apply(self, source: Path, ctx: RecipeContext) -> Path:
        current = source
        for index, step in enumerate(self.steps):
            prefix = self.steps[: index + 1]
            done = ctx.done.get(prefix)
            if isinstance(done, RecipeError):
                raise done
            if done is None:
                target = ctx.work_dir / f"{'+'.join(prefix)}.onnx"
                try:
                    # Quantizers write scratch files (sym_shape_infer_temp.onnx) into the working folder.
                    with contextlib.chdir(ctx.work_dir):
                        STEPS[step].build().apply(current, target, ctx)
                except RecipeError as exc:
                    ctx.done[prefix] = exc
                    raise
                except Exception as exc:
                    error = RecipeError(f"recipe step {step} failed: {_describe(exc)}")
                    ctx.done[prefix] = error
                    raise error from exc
                ctx.done[prefix] = done = target
            current = done
        return current


def _describe(error: BaseException) -> str:
    """The error's line; for a bare `assert` in a library (no message), where it failed and what it checked."""
    if str(error).strip():
        return reason(error)
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return type(error).__name__
    last = frames[-1]
    return f"{type(error).__name__} in {Path(last.filename).name}:{last.lineno} ({(last.line or '').strip()})"
