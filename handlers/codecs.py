"""Request codecs: what a client may send instead of raw tensors, as the bundle's preprocessing
(handlers.manifest.ImagePreprocessing, TextPreprocessing) says:

    image -> {"image": base64} or {"images": [base64, ...]}  (PNG or JPEG), or the image itself as the
             body, `Content-Type: image/png` or `image/jpeg` (no base64: a third more room under 6 MB)
    text  -> {"text": "..."} or {"texts": ["...", ...]}, or the text itself, `Content-Type: text/plain`

Pillow and tokenizers are imported only by bundles that use them.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from handlers.errors import BadRequestError, ManifestError, PayloadTooLargeError, reason
from handlers.manifest import ImagePreprocessing, Manifest, TensorSpec, TextPreprocessing

MAX_ITEMS = 64
MAX_PIXELS = 40_000_000


class ImageCodec:
    fields = ("image", "images")
    media = ("image/png", "image/jpeg")

    def __init__(self, config: ImagePreprocessing, manifest: Manifest) -> None:
        self.spec = _input(manifest, config.input)
        self.size = config.size
        self.mode = config.mode
        self.scale = config.scale
        self.mean = np.asarray(config.mean or [0.0] * config.channels, dtype=np.float32)
        self.std = np.asarray(config.std or [1.0] * config.channels, dtype=np.float32)
        self.layout = config.layout
        self.max_pixels = min(MAX_PIXELS, manifest.limits.max_pixels)
        self.max_items = min(MAX_ITEMS, manifest.limits.max_rows or MAX_ITEMS)

    def decode(self, payload: dict[str, Any]) -> dict[str, np.ndarray]:
        items = _items(payload, *self.fields, self.max_items)
        return self.decode_images([_b64(item, f"image {index}") for index, item in enumerate(items)])

    def decode_raw(self, body: bytes) -> dict[str, np.ndarray]:
        """A request whose body is the image itself."""
        return self.decode_images([body])

    def decode_images(self, blobs: list[bytes]) -> dict[str, np.ndarray]:
        from PIL import Image, UnidentifiedImageError

        Image.MAX_IMAGE_PIXELS = self.max_pixels
        images = []
        total = 0
        with warnings.catch_warnings():
            # PIL only warns between its limit and twice it: refuse those too, whatever the warning filters.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                for index, blob in enumerate(blobs):
                    image = Image.open(io.BytesIO(blob))
                    if image.format not in ("PNG", "JPEG", "MPO"):
                        raise BadRequestError(f"image {index} is {image.format}; send PNG or JPEG", code="bad_image")
                    total += image.width * image.height
                    if total > self.max_pixels:
                        raise PayloadTooLargeError(
                            f"the images add up to more than {self.max_pixels} pixels (read from their headers, "
                            f"{total} by image {index}): send smaller images or fewer per request",
                            code="image_too_large",
                        )
                    images.append(image)
                arrays = [self._pixels(image) for image in images]
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
                raise PayloadTooLargeError(
                    f"an image has more than {self.max_pixels} pixels", code="image_too_large"
                ) from exc
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
                raise BadRequestError(
                    f"an image is not a readable PNG or JPEG image ({reason(exc)})", code="bad_image"
                ) from exc
            finally:
                for image in images:
                    image.close()
        batch = np.stack(arrays) * self.scale
        if batch.ndim == 3:
            batch = batch[..., None]
        batch = (batch - self.mean) / self.std
        if self.layout == "NCHW":
            batch = batch.transpose(0, 3, 1, 2)
        return {self.spec.name: _fit(batch.astype(np.float32), self.spec)}

    def _pixels(self, image: Any) -> np.ndarray:
        """One image at the model's size and mode. A multi-frame JPEG (MPO, as phone cameras write)
        gives its first frame; 16-bit greyscale is scaled to 8-bit's range, not clipped."""
        from PIL import Image

        size = (self.size[1], self.size[0])
        if getattr(image, "n_frames", 1) > 1:
            image.seek(0)
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):
            grey = Image.fromarray(np.asarray(image, dtype=np.float32) / 257.0, mode="F")
            plane = np.asarray(grey.resize(size, Image.Resampling.BILINEAR), dtype=np.float32)
            return plane if self.mode == "L" else np.repeat(plane[..., None], 3, axis=-1)
        if image.format == "JPEG":
            image.draft(self.mode, size)  # decode a large JPEG at a reduced scale: less memory, less time
        return np.asarray(image.convert(self.mode).resize(size, Image.Resampling.BILINEAR), dtype=np.float32)


class TextCodec:
    fields = ("text", "texts")
    media = ("text/plain",)

    def __init__(self, config: TextPreprocessing, manifest: Manifest, model_dir: Path) -> None:
        from tokenizers import Tokenizer

        self.ids = _input(manifest, config.ids)
        self.mask = _input(manifest, config.mask) if config.mask else None
        self.type_ids = _input(manifest, config.type_ids) if config.type_ids else None
        self.max_length = config.max_length
        self.max_chars = manifest.limits.max_text_chars
        self.max_items = min(MAX_ITEMS, manifest.limits.max_rows or MAX_ITEMS)
        try:
            self.tokenizer = Tokenizer.from_file(str(model_dir / config.tokenizer))
        except Exception as exc:
            raise ManifestError(f"cannot load the bundle's tokenizer: {reason(exc)}") from exc
        self.tokenizer.enable_truncation(self.max_length)
        # With a mask the model ignores padding, so a batch pads to its longest text, not to max_length.
        pad = self.tokenizer.padding or {}
        self.tokenizer.enable_padding(
            pad_id=pad.get("pad_id", 0),
            pad_token=pad.get("pad_token", "[PAD]"),
            length=None if self.mask is not None and isinstance(self.ids.shape[-1], str) else self.max_length,
        )

    def decode(self, payload: dict[str, Any]) -> dict[str, np.ndarray]:
        texts = _items(payload, *self.fields, self.max_items)
        if not all(isinstance(t, str) for t in texts):
            raise BadRequestError("texts must be strings", code="wrong_dtype")
        return self.decode_texts(texts)

    def decode_raw(self, body: bytes) -> dict[str, np.ndarray]:
        """A request whose body is one text, UTF-8."""
        try:
            return self.decode_texts([body.decode("utf-8")])
        except UnicodeDecodeError as exc:
            raise BadRequestError(f"the text is not UTF-8: {exc}", code="bad_text") from exc

    def decode_texts(self, texts: list[str]) -> dict[str, np.ndarray]:
        # Tokenizers truncate after tokenizing the whole text: cut it first, far beyond max_length tokens.
        encodings = self.tokenizer.encode_batch([text[: self.max_chars] for text in texts])
        arrays = {self.ids.name: np.asarray([e.ids for e in encodings], dtype=self.ids.dtype)}
        if self.mask is not None:
            arrays[self.mask.name] = np.asarray([e.attention_mask for e in encodings], dtype=self.mask.dtype)
        if self.type_ids is not None:
            arrays[self.type_ids.name] = np.zeros(arrays[self.ids.name].shape, dtype=self.type_ids.dtype)
        return arrays


Codec = ImageCodec | TextCodec


def make_codec(manifest: Manifest, model_dir: Path) -> Codec | None:
    config = manifest.preprocessing
    if isinstance(config, ImagePreprocessing):
        return ImageCodec(config, manifest)
    if isinstance(config, TextPreprocessing):
        return TextCodec(config, manifest, model_dir)
    return None


def _input(manifest: Manifest, name: Any) -> TensorSpec:
    specs = {spec.name: spec for spec in manifest.inputs}
    if name is None and len(specs) == 1:
        return manifest.inputs[0]
    if name not in specs:
        raise ManifestError(f"preprocessing names input {name!r}, but the model takes {list(specs)}")
    return specs[name]


def _items(payload: dict[str, Any], one: str, many: str, limit: int) -> list[Any]:
    if one in payload and many in payload:
        raise BadRequestError(f'send "{one}" or "{many}", not both')
    items = [payload[one]] if one in payload else payload.get(many)
    if not isinstance(items, list) or not items:
        raise BadRequestError(f'send "{one}": a value, or "{many}": a non-empty list')
    if len(items) > limit:
        raise PayloadTooLargeError(f"at most {limit} {many} per request, got {len(items)}", code="too_many_rows")
    return items


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise BadRequestError(f"{what} must be a base64 string", code="bad_image")
    try:
        return base64.b64decode(value.split(",", 1)[-1] if value.startswith("data:") else value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequestError(f"{what} is not valid base64", code="bad_base64") from exc


def _fit(batch: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Reshape the decoded images to the model input (e.g. 8x8 grey pixels into a 64-vector)."""
    if len(spec.shape) == batch.ndim and all(
        not isinstance(d, int) or d in (-1, got) for d, got in zip(spec.shape[1:], batch.shape[1:], strict=True)
    ):
        return batch
    per_item = [d for d in spec.shape[1:] if isinstance(d, int) and d > 0]
    if len(per_item) == len(spec.shape) - 1 and int(np.prod(per_item)) == int(np.prod(batch.shape[1:])):
        return batch.reshape(len(batch), *per_item)
    raise ManifestError(f"preprocessed images are {list(batch.shape[1:])}, the model input is {spec.describe()}")
