"""`pack --preprocess FILE.json`: let the endpoint take images or text, checked against the model now.

The file holds one preprocessing section of the manifest (handlers.manifest: image, text or tensor);
the handler's own parser reads it, so the two cannot disagree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from handlers.errors import ManifestError
from handlers.manifest import (
    Manifest,
    Preprocessing,
    TensorPreprocessing,
    TextPreprocessing,
    preprocessing_from_dict,
)
from packager.errors import LambdafitError


@dataclass(frozen=True)
class PreprocessingFiles:
    config: Preprocessing = field(default_factory=TensorPreprocessing)
    files: dict[str, Path] = field(default_factory=dict)
    """Files the bundle's model folder must hold, by name (the tokenizer)."""


def load_preprocessing(path: Path | None) -> PreprocessingFiles:
    if path is None:
        return PreprocessingFiles()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LambdafitError(f"cannot read --preprocess {path}: {exc}") from exc
    tokenizer = None
    if isinstance(data, dict) and data.get("kind") == "text":
        # The tokenizer is named relative to the JSON file here, and by its file name inside the bundle.
        tokenizer = (path.parent / str(data.get("tokenizer", TextPreprocessing.tokenizer))).resolve()
        data = data | {"tokenizer": tokenizer.name}
    try:
        config = preprocessing_from_dict(data)
    except ManifestError as exc:
        raise LambdafitError(f"--preprocess {path}: {exc}") from exc
    if tokenizer is None:
        return PreprocessingFiles(config)
    if not tokenizer.is_file():
        raise LambdafitError(f"--preprocess {path}: tokenizer {tokenizer} does not exist")
    return PreprocessingFiles(config, {tokenizer.name: tokenizer})


def check_preprocessing(preprocessing: PreprocessingFiles, manifest: Manifest) -> None:
    """Build the handler's codec now, so a mismatch fails the pack and not the first request."""
    if isinstance(preprocessing.config, TensorPreprocessing):
        return
    from handlers.codecs import make_codec

    folder = next(iter(preprocessing.files.values())).parent if preprocessing.files else Path(".")
    try:
        make_codec(replace(manifest, preprocessing=preprocessing.config), folder)
    except ManifestError as exc:
        raise LambdafitError(f"--preprocess does not fit the model: {exc}") from exc
