"""Image and text bundles end to end: PNG/JPEG requests decoded with Pillow, text tokenized with a
Hugging Face tokenizer.json, both against onnxruntime called directly on the same preprocessing."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest
from PIL import Image

from handlers.events import RestEvent
from packager.config import PackConfig
from packager.emulator import LambdaContext
from packager.pack import pack
from tests.conftest import DIGITS, handler_for

JSON = {"Content-Type": "application/json"}


def call(handler: Any, body: Any) -> tuple[int, dict[str, Any]]:
    event = RestEvent.build("POST", "/predict", body=json.dumps(body), headers=JSON)
    result = handler(event, LambdaContext(function_name="t"))
    return result["statusCode"], json.loads(result["body"])


def png(pixels: np.ndarray, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8), mode="L").save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def image_bundle(tmp_path_factory: pytest.TempPathFactory, digits_files: dict[str, Path]) -> Path:
    folder = tmp_path_factory.mktemp("image")
    spec = folder / "preprocess.json"
    spec.write_text(json.dumps({"kind": "image", "size": [8, 8], "mode": "L", "scale": 1 / 255}))
    config = PackConfig(model=f"{DIGITS / 'model.py'}:build", name="digits", output_dir=folder,
                        eval_data=digits_files["eval"], recipes=("slim",), preprocess=spec)  # fmt: skip
    return pack(config).bundle


def test_png_digits_are_decoded_like_the_tensors(image_bundle: Path, digits_files: dict[str, Path]) -> None:
    assert any(p.name.startswith("pillow-") for p in (image_bundle / "function" / "wheels").glob("*.whl"))
    x = np.load(digits_files["eval"])["x"][:12]
    pixels = np.round(x * 255).reshape(-1, 8, 8)
    handler = handler_for(image_bundle / "function" / "model")
    status, body = call(handler, {"images": [png(p) for p in pixels]})
    assert status == 200, body
    session = onnxruntime.InferenceSession(str(image_bundle / "function" / "model" / "model.onnx"))
    direct = session.run(None, {"x": (pixels.reshape(-1, 64) / 255).astype(np.float32)})[0]
    np.testing.assert_allclose(np.array(body["outputs"]["logits"]), direct, rtol=1e-5, atol=1e-5)
    assert [p["label"] for p in body["predictions"]] == [str(i) for i in direct.argmax(1)]
    status, one = call(handler, {"image": png(pixels[0])})
    assert status == 200 and one["outputs"]["logits"] == body["outputs"]["logits"][:1]
    status, tensor = call(handler, {"inputs": (pixels[:1].reshape(1, 64) / 255).tolist()})
    assert status == 200  # tensors work too, on an image bundle
    np.testing.assert_allclose(tensor["outputs"]["logits"], one["outputs"]["logits"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"image": "not base64!"}, "bad_base64"),
        ({"image": base64.b64encode(b"GIF89a garbage").decode()}, "bad_image"),
        ({"image": 7}, "bad_image"),
        ({"images": []}, "bad_request"),
        ({"image": "x", "images": ["x"]}, "bad_request"),
    ],
)
def test_bad_images_are_refused(image_bundle: Path, body: dict[str, Any], code: str) -> None:
    handler = handler_for(image_bundle / "function" / "model")
    status, payload = call(handler, body)
    assert (status, payload["code"]) == (400, code), payload


def test_gif_is_not_accepted(image_bundle: Path) -> None:
    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, format="GIF")
    handler = handler_for(image_bundle / "function" / "model")
    status, payload = call(handler, {"image": base64.b64encode(buffer.getvalue()).decode()})
    assert status == 400 and "send PNG or JPEG" in payload["error"]


TEXT_FACTORY = """
from examples.transformer.model import Config, TextClassifier
import torch

def build():
    torch.manual_seed(0)
    model = TextClassifier(Config(vocab=64, hidden=32, layers=1, heads=2, ff=64, seq=16, classes=3))
    return model.eval(), {"input_ids": torch.zeros(1, 16, dtype=torch.int64)}
"""


def test_text_bundle_tokenizes_with_the_shipped_tokenizer(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["the", "a", "model", "lambda", "serves", "text", "and", "images", "fast", "small", "cold", "start", "warm"]
    vocab = {"[PAD]": 0, "[UNK]": 1} | {w: i + 2 for i, w in enumerate(words)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "factory.py").write_text(TEXT_FACTORY)
    spec = tmp_path / "preprocess.json"
    spec.write_text(json.dumps({"kind": "text", "tokenizer": "tokenizer.json", "max_length": 16, "ids": "input_ids"}))
    config = PackConfig(model=f"{tmp_path / 'factory.py'}:build", name="text", output_dir=tmp_path / "out",
                        recipes=("slim",), preprocess=spec)  # fmt: skip
    bundle = pack(config).bundle
    assert (bundle / "function" / "model" / "tokenizer.json").is_file()
    assert any(p.name.startswith("tokenizers-") for p in (bundle / "function" / "wheels").glob("*.whl"))
    handler = handler_for(bundle / "function" / "model")
    texts = ["the model serves text", "warm start and cold start are small", "unknown words here"]
    status, body = call(handler, {"texts": texts})
    assert status == 200, body
    tokenizer.enable_padding(length=16)
    tokenizer.enable_truncation(16)
    ids = np.array([e.ids for e in tokenizer.encode_batch(texts)], dtype=np.int64)
    session = onnxruntime.InferenceSession(str(bundle / "function" / "model" / "model.onnx"))
    direct = session.run(None, {"input_ids": ids})[0]
    np.testing.assert_allclose(np.array(body["outputs"]["logits"]), direct, rtol=1e-5, atol=1e-5)
    status, payload = call(handler, {"texts": ["ok", 5]})
    assert (status, payload["code"]) == (400, "wrong_dtype")
