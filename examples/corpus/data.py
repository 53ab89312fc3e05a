"""Evaluation data for corpus models that need real or plausible inputs: audio chunks with a recurrent
state, rendered text and documents for OCR models, file bytes for magika, tabular rows with labels.

Each function returns the arrays of one .npz (one array per model input, `labels` where known).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SEED = 0
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
WORDS = ["invoice", "total", "amount", "due", "order", "number", "customer", "payment", "balance", "2026-12-01"]


def audio_chunks(rows: int = 24, samples: int = 512, rate: int = 16000) -> np.ndarray:
    """Consecutive 32 ms chunks of a voiced tone (with harmonics and noise) and of near-silence."""
    rng = np.random.default_rng(SEED)
    t = np.arange(rows * samples) / rate
    voice = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((180, 360, 540, 720), start=1))
    envelope = (np.sin(2 * np.pi * 1.5 * t) > 0).astype(np.float64)
    signal = 0.3 * voice * envelope + 0.01 * rng.standard_normal(t.size)
    return signal.astype(np.float32).reshape(rows, samples)


def silero(rows: int = 24) -> dict[str, np.ndarray]:
    """silero-vad: 512-sample rows at 16 kHz, the state of a fresh stream [2, rows, 128], sr once."""
    return {
        "input": audio_chunks(rows),
        "state": np.zeros((2, rows, 128), np.float32),
        "sr": np.array(16000, dtype=np.int64),
    }


def silero_sequence(frames: int = 12) -> dict[str, np.ndarray]:
    """silero-vad's LSTM export: [frames, 576] windows (64 samples of context + 512) and h, c of zeros."""
    audio = audio_chunks(frames + 1).ravel()
    windows = np.stack([audio[i * 512 : i * 512 + 576] for i in range(frames)])
    return {"input": windows, "h": np.zeros((1, 1, 128), np.float32), "c": np.zeros((1, 1, 128), np.float32)}


def _text_image(height: int, width: int, lines: int, seed: int) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    size = max(10, height // (2 * lines + 1))
    font = ImageFont.truetype(FONT, size) if Path(FONT).is_file() else ImageFont.load_default()
    for line in range(lines):
        text = " ".join(rng.choice(WORDS, size=3))
        draw.text((int(rng.integers(4, 20)), int(size * (2 * line + 0.5))), text, fill="black", font=font)
    return np.asarray(image, dtype=np.float32) / 255.0


def _nchw(images: list[np.ndarray], mean: float = 0.5, std: float = 0.5) -> np.ndarray:
    return ((np.stack(images) - mean) / std).transpose(0, 3, 1, 2).astype(np.float32)


def ocr_pages(rows: int = 6, height: int = 96, width: int = 256) -> dict[str, np.ndarray]:
    """Text on white for the PP-OCR detector, normalised as RapidOCR feeds it (H, W multiples of 32)."""
    return {"x": _nchw([_text_image(height, width, 2, SEED + i) for i in range(rows)])}


def ocr_lines(rows: int = 8) -> dict[str, np.ndarray]:
    """Single text lines, 48 high, for the PP-OCR angle classifier; upright and upside down (labels 0, 180)."""
    images = [_text_image(48, 192, 1, SEED + i) for i in range(rows)]
    images = [image if i % 2 == 0 else image[::-1, ::-1] for i, image in enumerate(images)]
    return {"x": _nchw(images), "labels": np.array([i % 2 for i in range(rows)], dtype=np.int64)}


def documents(rows: int = 2) -> dict[str, np.ndarray]:
    """Pages for the layout detector, 800x608, ImageNet-normalised."""
    pages = [_text_image(800, 608, 12, SEED + i) for i in range(rows)]
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    return {"image": ((np.stack(pages) - mean) / std).transpose(0, 3, 1, 2).astype(np.float32)}


def upright(rows: int = 6) -> dict[str, np.ndarray]:
    """224x224 text crops for the orientation classifier, rotated by 0/90/180/270 (its classes, in order)."""
    images = [np.rot90(_text_image(224, 224, 4, SEED + i), k=i % 4).copy() for i in range(rows)]
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    x = ((np.stack(images) - mean) / std).transpose(0, 3, 1, 2).astype(np.float32)
    return {"x": x, "labels": np.array([i % 4 for i in range(rows)], dtype=np.int64)}


MAGIKA_TYPES = {".py": "python", ".json": "json", ".md": "markdown", ".html": "html", ".css": "css", ".c": "c",
                ".js": "javascript", ".sh": "shell", ".toml": "toml", ".xml": "xml", ".txt": "txt"}  # fmt: skip


def magika(config: Path, rows: int = 24) -> dict[str, np.ndarray]:
    """Real files from this Python installation as magika's features: the first and last 1024 bytes
    (whitespace stripped), padded with 256; labels are the types their extensions say."""
    import json
    import sysconfig

    settings = json.loads(config.read_text())
    labels = list(settings["target_labels_space"])
    size, pad = int(settings["beg_size"]), int(settings["padding_token"])
    roots = [Path(sysconfig.get_paths()["stdlib"]), Path(sysconfig.get_paths()["purelib"])]
    files: list[tuple[Path, str]] = []
    for suffix, kind in MAGIKA_TYPES.items():
        found = sorted(p for root in roots for p in root.glob(f"*/*{suffix}") if p.stat().st_size > 512)
        files += [(p, kind) for p in found[:3] if kind in labels]
    rng = np.random.default_rng(SEED)
    picked = [files[i] for i in rng.permutation(len(files))[:rows]]
    x = np.full((len(picked), 2 * size), pad, dtype=np.int32)
    for row, (path, _) in enumerate(picked):
        data = path.read_bytes()
        begin, end = data[:4096].lstrip()[:size], data[-4096:].rstrip()[-size:]
        x[row, : len(begin)] = list(begin)
        x[row, 2 * size - len(end) :] = list(end)
    return {"bytes": x, "labels": np.array([labels.index(kind) for _, kind in picked], dtype=np.int64)}


def iris_two_features() -> dict[str, np.ndarray]:
    """onnxruntime's logreg_iris takes two iris features (no labels: the file is a test model, see registry)."""
    from sklearn.datasets import load_iris

    x, _ = load_iris(return_X_y=True)
    return {"float_input": x[:, :2].astype(np.float32)}


def tree_rows(features: int, rows: int = 40) -> dict[str, np.ndarray]:
    """Plausible rows for skl2onnx's test tree classifiers, which do not declare their feature count."""
    rng = np.random.default_rng(SEED)
    return {"input": rng.standard_normal((rows, features)).astype(np.float32)}


def nudenet(rows: int = 2) -> dict[str, np.ndarray]:
    """320x320 photos stand-ins (smooth colour fields with shapes), scaled to [0, 1] as nudenet feeds them."""
    rng = np.random.default_rng(SEED)
    yy, xx = np.mgrid[0:320, 0:320] / 320.0
    images = []
    for _ in range(rows):
        base = np.stack([np.sin(3 * xx + rng.random() * 6), np.cos(2 * yy + rng.random() * 6), xx * yy], axis=0)
        images.append(((base - base.min()) / np.ptp(base)).astype(np.float32))
    return {"images": np.stack(images)}


def png(pixels: np.ndarray) -> bytes:
    """[H, W, 3] floats in [0, 1] as PNG bytes, the way a client would send an image."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8), mode="RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def page_images(count: int = 2, height: int = 400, width: int = 304) -> list[bytes]:
    """Document pages as PNG (the endpoint resizes them to the model's input)."""
    return [png(_text_image(height, width, 8, SEED + 10 + i)) for i in range(count)]


def photo_images(count: int = 2) -> list[bytes]:
    return [png(image.transpose(1, 2, 0)) for image in nudenet(count)["images"]]
