"""Hugging Face checkpoint folders (config.json, safetensors, tokenizer files), exported with Optimum."""

from __future__ import annotations

from pathlib import Path

from packager.errors import ModelLoadError
from packager.load import LoadOptions, OnnxModel


def load_checkpoint(folder: Path, options: LoadOptions) -> OnnxModel:
    raise ModelLoadError(f"{folder}: Hugging Face checkpoints are not implemented yet")
