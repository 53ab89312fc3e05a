"""Optimization recipes: each transform is one module registered by name; recipes chain them with '+'."""

from packager.config import CalibrationMethod
from packager.recipes import fp16, int4, prune, quantize, slim
from packager.recipes.base import (
    BASELINE,
    TRANSFORMS,
    Recipe,
    RecipeContext,
    Transform,
    register,
    register_factory,
)

__all__ = [
    "BASELINE",
    "TRANSFORMS",
    "CalibrationMethod",
    "Recipe",
    "RecipeContext",
    "Transform",
    "fp16",
    "int4",
    "prune",
    "quantize",
    "register",
    "register_factory",
    "slim",
]
