"""Evaluation data for the PP-OCR text recognizer that ships inside the `rapidocr` wheel.

Text lines are rendered with PIL in a Debian font (DejaVu), preprocessed the way RapidOCR feeds its
recognizer (height 48, width up to 320, scaled to [-1, 1], right-padded), and saved with their text:

    python examples/ocr/data.py     # writes eval.npz (labels = the text) and calibration.npz here

Nothing is downloaded: the model comes from the installed wheel, the font from fonts-dejavu-core.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
HEIGHT, WIDTH = 48, 320
FONTS = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
]
WORDS = [
    "invoice",
    "total",
    "amount",
    "due",
    "date",
    "order",
    "number",
    "customer",
    "account",
    "payment",
    "received",
    "balance",
    "shipping",
    "address",
    "street",
    "city",
    "station",
    "platform",
    "train",
    "ticket",
    "price",
    "quantity",
    "item",
    "code",
    "serial",
    "model",
    "lambda",
    "server",
    "request",
    "response",
    "model",
    "version",
    "delivery",
    "package",
    "weight",
    "north",
    "south",
    "east",
    "west",
]


def recognizer() -> Path:
    """The recognizer inside the rapidocr wheel (a real model nobody here wrote)."""
    return Path(str(resources.files("rapidocr") / "models" / "PP-OCRv6_rec_small.onnx"))


def line_text(rng: np.random.Generator) -> str:
    kind = rng.integers(0, 3)
    if kind == 0:
        return " ".join(rng.choice(WORDS, size=rng.integers(1, 4)))
    if kind == 1:
        return f"{rng.choice(WORDS).capitalize()} {rng.integers(10, 99999)}"
    return f"{rng.integers(1, 28):02d}-{rng.integers(1, 12):02d}-{rng.integers(1990, 2030)}"


def render(text: str, font_path: str, rng: np.random.Generator) -> Image.Image:
    font = ImageFont.truetype(font_path, size=int(rng.integers(26, 34)))
    left, top, right, bottom = font.getbbox(text)
    pad = int(rng.integers(4, 12))
    image = Image.new("RGB", (right - left + 2 * pad, bottom - top + 2 * pad), (255, 255, 255))
    shade = int(rng.integers(0, 60))
    ImageDraw.Draw(image).text((pad - left, pad - top), text, font=font, fill=(shade, shade, shade))
    return image


def preprocess(image: Image.Image) -> np.ndarray:
    """RapidOCR's recognizer input: resize to height 48 keeping the aspect, normalize, pad to 320."""
    width = min(WIDTH, math.ceil(HEIGHT * image.width / image.height))
    resized = np.asarray(image.resize((width, HEIGHT), Image.Resampling.BILINEAR), dtype=np.float32)
    chw = (resized.transpose(2, 0, 1) / 255.0 - 0.5) / 0.5
    padded = np.zeros((3, HEIGHT, WIDTH), dtype=np.float32)
    padded[:, :, :width] = chw
    return padded


def dataset(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    texts = [line_text(rng) for _ in range(count)]
    images = [preprocess(render(t, FONTS[i % len(FONTS)], rng)) for i, t in enumerate(texts)]
    return np.stack(images), np.array(texts)


def main() -> None:
    x, labels = dataset(150, seed=1)
    np.savez(HERE / "eval.npz", x=x, labels=labels)
    x, _ = dataset(64, seed=2)
    np.savez(HERE / "calibration.npz", x=x)
    print(f"wrote {HERE / 'eval.npz'} ({len(labels)} lines) and calibration.npz; model: {recognizer()}")


if __name__ == "__main__":
    main()
