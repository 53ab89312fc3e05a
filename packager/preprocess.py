"""`pack --preprocess FILE.json`: let the endpoint take images or text, checked against the model now."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from handlers.errors import ManifestError
from handlers.manifest import Manifest
from packager.errors import LambdafitError

TOKENIZER_FILE = "tokenizer.json"


@dataclass(frozen=True)
class Preprocessing:
    config: dict[str, Any] = field(default_factory=lambda: {"kind": "tensor"})
    files: dict[str, Path] = field(default_factory=dict)
    """Files the bundle's model folder must hold, by name (the tokenizer)."""

    @property
    def extras(self) -> tuple[str, ...]:
        kind = self.config.get("kind", "tensor")
        return () if kind == "tensor" else (str(kind),)


def load_preprocessing(path: Path | None) -> Preprocessing:
    if path is None:
        return Preprocessing()
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LambdafitError(f"cannot read --preprocess {path}: {exc}") from exc
    if not isinstance(config, dict) or config.get("kind") not in ("tensor", "image", "text"):
        raise LambdafitError(f'--preprocess {path} must be a JSON object with "kind": "image", "text" or "tensor"')
    files = {}
    if config["kind"] == "text":
        tokenizer = (path.parent / str(config.get("tokenizer", TOKENIZER_FILE))).resolve()
        if not tokenizer.is_file():
            raise LambdafitError(f"--preprocess {path}: tokenizer {tokenizer} does not exist")
        files[TOKENIZER_FILE] = tokenizer
        config = config | {"tokenizer": TOKENIZER_FILE}
    return Preprocessing(config=config, files=files)


def check_preprocessing(preprocessing: Preprocessing, manifest: Manifest) -> None:
    """Build the handler's codec now, so a mismatch fails the pack and not the first request."""
    if preprocessing.config.get("kind", "tensor") == "tensor":
        return
    from handlers.codecs import make_codec

    folder = next(iter(preprocessing.files.values())).parent if preprocessing.files else Path(".")
    config = dict(preprocessing.config)
    if preprocessing.files:
        config["tokenizer"] = next(iter(preprocessing.files.values())).name
    try:
        make_codec(Manifest.from_dict(manifest.to_dict() | {"preprocessing": config}), folder)
    except ManifestError as exc:
        raise LambdafitError(f"--preprocess does not fit the model: {exc}") from exc
