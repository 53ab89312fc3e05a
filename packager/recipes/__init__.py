"""Optimization recipes: each transform is one module, named in `registry.STEPS`; recipes chain them with '+'."""

from packager.recipes.base import Recipe, RecipeContext, Transform
from packager.recipes.registry import BASELINE, STEPS, Step, check_recipe

__all__ = ["BASELINE", "STEPS", "Recipe", "RecipeContext", "Step", "Transform", "check_recipe"]
