"""Optimization recipes: each transform is one module registered by name; recipes chain them."""

from packager.recipes import quantize, slim
from packager.recipes.base import BASELINE, TRANSFORMS, Recipe, RecipeContext, Transform, register

AUTO = ("fp32", "slim", "slim+int8-dynamic", "slim+int8-static")
"""What `--recipes auto` tries, fp32 first: the baseline every other candidate is measured against."""

__all__ = [
    "AUTO",
    "BASELINE",
    "TRANSFORMS",
    "Recipe",
    "RecipeContext",
    "Transform",
    "quantize",
    "register",
    "slim",
]
