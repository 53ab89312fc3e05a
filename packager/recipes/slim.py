"""Graph slimming with onnxslim: folds constants, fuses, removes dead nodes. Quantizers need it too:
weights held in Constant nodes are invisible to them until it has run."""

from __future__ import annotations

from pathlib import Path

from packager.errors import RecipeError
from packager.recipes.base import RecipeContext, Transform


class Slim(Transform):
    def apply(self, source: Path, target: Path, ctx: RecipeContext) -> None:
        import contextlib
        import io

        import onnx
        import onnxslim

        domains = {o.domain for o in onnx.load(str(source), load_external_data=False).opset_import}
        if not domains & {"", "ai.onnx"}:
            raise RecipeError(f"onnxslim needs an ai.onnx opset; this graph imports only {sorted(domains)}")

        with contextlib.redirect_stdout(io.StringIO()):
            onnxslim.slim(str(source), output_model=str(target))
