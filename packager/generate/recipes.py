"""The candidates of a text-generation pack, and the builder subprocess that makes each one: onnxruntime-genai's
model builder (`python -m onnxruntime_genai.models.builder`), offline, into a model folder with model.onnx,
its external weights, genai_config.json and the tokenizer files.

int8 and int4 are weight-only (MatMulNBits, block 32) with `accuracy_level=4`: int8 compute on CPU.
`int4-qembed` also quantizes the token embedding (GatherBlockQuantized); a model with tied embeddings
gets that with plain int4 already (the builder shares one quantized matrix), so it is left out there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from packager.errors import RecipeError

BASELINE = "fp32"
AUTO = "auto"
BUILD_TIMEOUT_S = 3 * 3600


class Precision(StrEnum):
    FP32 = "fp32"
    INT8 = "int8"
    INT4 = "int4"


@dataclass(frozen=True)
class GenerationRecipe:
    name: str
    precision: Precision
    extra_options: tuple[str, ...] = ()
    untied_only: bool = False
    """Only differs from another recipe when the model's embedding and LM head are separate matrices."""


RECIPES: dict[str, GenerationRecipe] = {
    recipe.name: recipe
    for recipe in (
        GenerationRecipe(BASELINE, Precision.FP32),
        GenerationRecipe("int8", Precision.INT8, ("accuracy_level=4",)),
        GenerationRecipe("int4", Precision.INT4, ("accuracy_level=4",)),
        GenerationRecipe(
            "int4-qembed", Precision.INT4, ("accuracy_level=4", "op_types_to_quantize=MatMul/Gather"), True
        ),
    )
}


def check_recipes(names: tuple[str, ...]) -> None:
    """`--recipes` for text generation: auto, or names from RECIPES."""
    unknown = [name for name in names if name != AUTO and name not in RECIPES]
    if unknown:
        raise RecipeError(
            f"unknown text-generation recipe {', '.join(unknown)}: use auto or a comma list of {', '.join(RECIPES)}"
        )


def plan(names: tuple[str, ...], tied_embeddings: bool) -> tuple[list[GenerationRecipe], list[str]]:
    """The recipes to build, fp32 first (every other is measured against it), and notes on any left out."""
    notes = []
    chosen = list(RECIPES) if names == (AUTO,) else [BASELINE, *(n for n in names if n != AUTO)]
    recipes = []
    for name in dict.fromkeys(chosen):
        recipe = RECIPES[name]
        if recipe.untied_only and tied_embeddings:
            notes.append(
                f"{name} left out: the model ties its embedding to the LM head, so int4 already quantizes the embedding"
            )
            continue
        recipes.append(recipe)
    return recipes, notes


def build(checkpoint: Path, recipe: GenerationRecipe, out: Path, cache: Path) -> Path:
    """Run the builder in its own process (it imports torch and transformers, and holds the weights twice);
    offline: a local folder, no hub."""
    shutil.rmtree(out, ignore_errors=True)
    command = [
        sys.executable, "-m", "onnxruntime_genai.models.builder",
        "-i", str(checkpoint), "-o", str(out), "-p", recipe.precision.value, "-e", "cpu", "-c", str(cache),
    ]  # fmt: skip
    if recipe.extra_options:
        command += ["--extra_options", *recipe.extra_options]
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    try:
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=BUILD_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise RecipeError(f"onnxruntime-genai's builder did not finish {recipe.name} in {BUILD_TIMEOUT_S} s") from exc
    if result.returncode != 0 or not (out / "model.onnx").is_file():
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        raise RecipeError(f"onnxruntime-genai's builder failed on {recipe.name}: {lines[-1] if lines else 'no output'}")
    return out
