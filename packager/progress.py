"""What `pack` says while it works: plain messages, and `RecipeStep`s that also say which recipe of how
many starts now, so a terminal can draw a bar with an ETA and a log can say how long each one took."""

from __future__ import annotations


class RecipeStep(str):
    """`[2/5] slim+int8-static: transforming and measuring`, with its parts as attributes. A str, so a
    reporter that only prints messages needs to know nothing about it."""

    number: int
    total: int
    recipe: str

    def __new__(cls, number: int, total: int, recipe: str) -> RecipeStep:
        step = super().__new__(cls, f"[{number}/{total}] {recipe}: transforming and measuring")
        step.number, step.total, step.recipe = number, total, recipe
        return step
