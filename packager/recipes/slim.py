"""Graph slimming with onnxslim: folds constants, fuses, removes dead nodes. Quantizers need it too:
weights held in Constant nodes are invisible to them until it has run."""

from __future__ import annotations

from pathlib import Path

from packager.recipes.base import RecipeContext, Transform


class Slim(Transform):
    def apply(self, source: Path, target: Path, ctx: RecipeContext) -> None:
        import contextlib
        import io

        import onnxslim

        with contextlib.redirect_stdout(io.StringIO()):
            onnxslim.slim(str(source), output_model=str(target))
