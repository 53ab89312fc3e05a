from __future__ import annotations

import json
from pathlib import Path

import pytest

from handlers.errors import ManifestError
from handlers.manifest import Manifest, TensorSpec, sha256_file


def sample() -> Manifest:
    return Manifest(
        name="digits",
        version="abc",
        model_file="model.onnx",
        sha256="0" * 64,
        inputs=(TensorSpec("x", "float32", ("batch", 64)),),
        outputs=(TensorSpec("logits", "float32", ("batch", 10)),),
        task="classification",
        labels=tuple("0123456789"),
        recipe="slim+int8-static",
        metrics={"quality": 0.98},
        runtime={"memory_mb": 512},
    )


def test_round_trip_through_json_is_lossless() -> None:
    manifest = sample()
    assert Manifest.from_dict(json.loads(manifest.dumps())) == manifest


def test_load_reads_the_file_and_reports_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no manifest"):
        Manifest.load(tmp_path)
    (tmp_path / "manifest.json").write_text("[1]")
    with pytest.raises(ManifestError, match="not a JSON object"):
        Manifest.load(tmp_path)
    data = sample().to_dict() | {"format_version": 99}
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="format_version is 99"):
        Manifest.load(tmp_path)
    data = sample().to_dict()
    del data["inputs"]
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="inputs"):
        Manifest.load(tmp_path)


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    import hashlib

    path = tmp_path / "blob"
    path.write_bytes(b"lambdafit" * 1000)
    assert sha256_file(path, chunk_size=7) == hashlib.sha256(b"lambdafit" * 1000).hexdigest()
