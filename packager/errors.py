"""The packager's error root. The CLI turns any of these into one line and exit code 2."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from packager.fit import Rejection


class LambdafitError(Exception):
    """Something the user can fix; the message says what is wrong and what to do."""


class ModelLoadError(LambdafitError):
    """The model file or factory could not be loaded."""


class ExportError(LambdafitError):
    """torch -> ONNX export failed, or the exported graph does not match torch."""


class DataError(LambdafitError):
    """An evaluation or calibration `.npz` does not fit the model."""


class RecipeError(LambdafitError):
    """An optimization recipe is unknown or failed on this model."""


class NoFitError(LambdafitError):
    """No candidate fits the budget within the allowed quality drop; `rejection` holds what was measured."""

    def __init__(self, message: str, rejection: Rejection | None = None) -> None:
        super().__init__(message)
        self.rejection = rejection


class BudgetError(NoFitError):
    """The runtime itself (wheels, handler, base image) leaves no room for any model in the budget."""


class BundleError(LambdafitError):
    """The bundle could not be written where it was asked for."""


class WheelError(LambdafitError):
    """The runtime wheels for the target could not be vendored."""
