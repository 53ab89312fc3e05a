"""`manifest.json`: the only contract between the packager and the handler.

Plain dataclasses and json, so the handler pays nothing for it at cold start.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from handlers.errors import ManifestError

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"

Dim = int | str
"""A tensor dimension: a fixed size, or a symbolic name such as "batch"."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str
    shape: tuple[Dim, ...]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TensorSpec:
        try:
            shape = tuple(d if isinstance(d, int) else str(d) for d in data["shape"])
            return cls(name=str(data["name"]), dtype=str(data["dtype"]), shape=shape)
        except (KeyError, TypeError) as exc:
            raise ManifestError(f"tensor spec {data!r} needs name, dtype and shape") from exc

    def describe(self) -> str:
        dims = ", ".join(str(d) for d in self.shape)
        return f"{self.name}: {self.dtype}[{dims}]"


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    model_file: str
    sha256: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    task: str = "generic"
    labels: tuple[str, ...] = ()
    preprocessing: dict[str, Any] = field(default_factory=lambda: {"kind": "tensor"})
    recipe: str = "fp32"
    metrics: dict[str, Any] = field(default_factory=dict)
    runtime: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ManifestError(
                f"manifest format_version is {version!r}, this handler reads {FORMAT_VERSION}: "
                "re-pack the model with the matching lambdafit"
            )
        try:
            return cls(
                name=str(data["name"]),
                version=str(data["version"]),
                model_file=str(data["model_file"]),
                sha256=str(data["sha256"]),
                inputs=tuple(TensorSpec.from_dict(t) for t in data["inputs"]),
                outputs=tuple(TensorSpec.from_dict(t) for t in data["outputs"]),
                task=str(data.get("task", "generic")),
                labels=tuple(str(label) for label in data.get("labels", ())),
                preprocessing=dict(data.get("preprocessing", {"kind": "tensor"})),
                recipe=str(data.get("recipe", "fp32")),
                metrics=dict(data.get("metrics", {})),
                runtime=dict(data.get("runtime", {})),
                format_version=version,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"manifest is missing or has a malformed field: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["inputs"] = [asdict(t) | {"shape": list(t.shape)} for t in self.inputs]
        data["outputs"] = [asdict(t) | {"shape": list(t.shape)} for t in self.outputs]
        data["labels"] = list(self.labels)
        return data

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def load(cls, model_dir: Path) -> Manifest:
        path = model_dir / MANIFEST_NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ManifestError(f"no manifest at {path}: is this a lambdafit bundle?") from exc
        except (OSError, ValueError) as exc:
            raise ManifestError(f"cannot read manifest {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ManifestError(f"manifest {path} is not a JSON object")
        return cls.from_dict(data)


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
