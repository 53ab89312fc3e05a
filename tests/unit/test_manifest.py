from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from handlers.errors import ManifestError
from handlers.manifest import (
    ImagePreprocessing,
    Manifest,
    ModelMetrics,
    RuntimeHints,
    Task,
    TensorSpec,
    TextPreprocessing,
    sha256_file,
)


def sample() -> Manifest:
    return Manifest(
        name="digits",
        version="abc",
        sha256="0" * 64,
        inputs=(TensorSpec("x", "float32", ("batch", 64)),),
        outputs=(TensorSpec("logits", "float32", ("batch", 10)),),
        task=Task.CLASSIFICATION,
        labels=tuple("0123456789"),
        recipe="slim+int8-static",
        metrics=ModelMetrics(quality=0.98, quality_kind="accuracy", p50_ms=0.1),
        runtime=RuntimeHints(memory_mb=512),
        preprocessing=ImagePreprocessing(size=(8, 8), mode="L", mean=(0.5,), std=(0.25,)),
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
    data = sample().to_dict() | {"runtime": {"memory_mb": 512, "threads": 2}}
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=r"runtime has unknown fields \['threads'\]"):
        Manifest.load(tmp_path)
    data = sample().to_dict() | {"preprocessing": {"kind": "image", "size": [8, 8], "mode": "CMYK"}}
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="image mode 'CMYK' must be RGB or L"):
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


def test_text_preprocessing_keeps_its_tokenizer_inside_the_model_folder() -> None:
    with pytest.raises(ValueError, match="must be a file name inside the model folder"):
        TextPreprocessing(tokenizer="../../etc/passwd")


def test_text_preprocessing_with_type_ids_round_trips() -> None:
    text = TextPreprocessing(max_length=64, ids="input_ids", mask="attention_mask", type_ids="token_type_ids")
    manifest = replace(sample(), preprocessing=text)
    loaded = Manifest.from_dict(json.loads(manifest.dumps()))
    assert loaded.preprocessing == text
    assert json.loads(manifest.dumps())["preprocessing"]["type_ids"] == "token_type_ids"
    assert "type_ids" not in json.loads(replace(manifest, preprocessing=TextPreprocessing()).dumps())["preprocessing"]
