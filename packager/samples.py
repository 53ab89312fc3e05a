"""A sample request of the kind the bundle takes, made from a real input of the packing data: a small
PNG for an image bundle (the first evaluation row, un-normalized back into pixels), a sentence for a
text bundle (the first row's tokens, decoded), one row of JSON arrays otherwise. The bundle keeps it as
`requests/request.json` (the JSON body, ready for curl), the raw file beside it, and uses it in the
sample events."""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from handlers.manifest import ImagePreprocessing, Manifest, TextPreprocessing
from packager.data import Dataset

FALLBACK_SENTENCE = "lambdafit serves this model on AWS Lambda."
REQUEST_FILE = "request.json"


@dataclass(frozen=True)
class SampleRequest:
    json_body: dict[str, Any]
    """What POST /predict takes as application/json."""
    raw: bytes | None = None
    """The same input as the body itself (a PNG, UTF-8 text), for bundles that take one."""
    media_type: str = "application/json"
    """The raw body's media type."""
    raw_file: str | None = None
    """Its file name in the bundle's events folder."""

    def write(self, folder: Path) -> None:
        (folder / REQUEST_FILE).write_text(json.dumps(self.json_body) + "\n", encoding="utf-8")
        if self.raw is not None and self.raw_file is not None:
            (folder / self.raw_file).write_bytes(self.raw)


def sample_request(
    manifest: Manifest, data: Dataset, tensors: dict[str, Any], model_files: dict[str, Path]
) -> SampleRequest:
    """`tensors`: one row of each input a request must send, as JSON (the tensor form)."""
    config = manifest.preprocessing
    if isinstance(config, ImagePreprocessing):
        png = image_sample(config, manifest, data)
        return SampleRequest({"image": base64.b64encode(png).decode("ascii")}, png, "image/png", "sample.png")
    if isinstance(config, TextPreprocessing):
        text = text_sample(config, manifest, data, model_files)
        return SampleRequest({"text": text}, text.encode("utf-8"), "text/plain", "sample.txt")
    inputs = next(iter(tensors.values())) if len(tensors) == 1 else tensors
    return SampleRequest({"inputs": inputs})


def image_sample(config: ImagePreprocessing, manifest: Manifest, data: Dataset) -> bytes:
    """The first row of the image input as a PNG: the codec's normalization undone. A row whose size is
    not the image's (the codec reshapes otherwise) gives a mid-grey image of the right size."""
    from PIL import Image

    name = config.input or manifest.inputs[0].name
    height, width = config.size
    channels = config.channels
    row = np.asarray(data.feed(1)[name], dtype=np.float32)
    if row.size == height * width * channels:
        planes = row.reshape((channels, height, width) if config.layout == "NCHW" else (height, width, channels))
        if config.layout == "NCHW":
            planes = planes.transpose(1, 2, 0)
        std = np.asarray(config.std or [1.0] * channels, dtype=np.float32)
        mean = np.asarray(config.mean or [0.0] * channels, dtype=np.float32)
        pixels = (planes * std + mean) / config.scale
    else:
        pixels = np.full((height, width, channels), 128.0, dtype=np.float32)
    array = np.clip(np.round(pixels), 0, 255).astype(np.uint8)
    image = Image.fromarray(array[..., 0] if channels == 1 else array, mode=config.mode)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def text_sample(config: TextPreprocessing, manifest: Manifest, data: Dataset, model_files: dict[str, Path]) -> str:
    """The first row's token ids decoded by the bundle's own tokenizer, or a plain sentence."""
    tokenizer_file = model_files.get(config.tokenizer)
    name = config.ids or manifest.inputs[0].name
    if tokenizer_file is None or data.synthetic:
        return FALLBACK_SENTENCE
    try:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        ids = [int(i) for i in np.asarray(data.feed(1)[name]).reshape(-1).tolist()]
        pad = (tokenizer.padding or {}).get("pad_id")
        while ids and pad is not None and ids[-1] == pad:
            ids.pop()
        text = tokenizer.decode(ids, skip_special_tokens=True)
    except Exception:
        return FALLBACK_SENTENCE
    return text.strip() or FALLBACK_SENTENCE
