"""`manifest.json`: what the packager tells the handler about the model it ships.

Typed sections with `from_dict`/`to_dict`, standard library only, so the handler pays nothing for it
at cold start. A malformed manifest is a `ManifestError` naming the field.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from handlers.contract import MANIFEST_FILE, MODEL_FILE
from handlers.errors import ManifestError

FORMAT_VERSION = 2

Dim = int | str
"""A tensor dimension: a fixed size, or a symbolic name such as "batch"."""
T = TypeVar("T")


class Task(StrEnum):
    CLASSIFICATION = "classification"
    GENERIC = "generic"
    TEXT_GENERATION = "text-generation"
    """A decoder-only language model served through an OpenAI-compatible API (handlers.generation)."""


TENSOR_DTYPES = (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "string",
)  # fmt: skip
"""What a tensor can hold: numpy's names, and `string` for ONNX strings (numpy object arrays of str)."""


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output.

    `dtype` is one of TENSOR_DTYPES, or `seq(map(K,V))` for a sequence of maps (scikit-learn's ZipMap
    probabilities). `batch_axis` is the axis that holds the rows of a request, or None for an input
    given once per request (a scalar, a flag, a sample rate) or an output with no rows. An unbatched
    input may carry a `default` the request can leave out (JSON: a number, or nested lists)."""

    name: str
    dtype: str
    shape: tuple[Dim, ...]
    batch_axis: int | None = 0
    default: Any = None
    value_range: tuple[int, int] | None = None
    """For integer inputs that index a table (token ids into an embedding): the valid values."""

    def __post_init__(self) -> None:
        if self.dtype not in TENSOR_DTYPES and not _MAP_SEQUENCE.fullmatch(self.dtype):
            raise ManifestError(f"tensor {self.name} has dtype {self.dtype!r}; the handler knows {TENSOR_DTYPES}")
        if self.batch_axis is not None and not 0 <= self.batch_axis < max(len(self.shape), 1):
            raise ManifestError(f"tensor {self.name}: batch axis {self.batch_axis} is outside its shape {self.shape}")

    @classmethod
    def from_dict(cls, data: Any) -> TensorSpec:
        try:
            shape = tuple(d if isinstance(d, int) else str(d) for d in data["shape"])
            axis = data.get("batch_axis", 0)
            return cls(
                name=str(data["name"]),
                dtype=str(data["dtype"]),
                shape=shape,
                batch_axis=None if axis is None else int(axis),
                default=data.get("default"),
                value_range=tuple(int(v) for v in data["value_range"]) if data.get("value_range") else None,  # type: ignore[arg-type]
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ManifestError(f"tensor spec {data!r} needs name, dtype and shape") from exc

    def to_dict(self) -> dict[str, Any]:
        data = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape), "batch_axis": self.batch_axis}
        if self.value_range is not None:
            data["value_range"] = list(self.value_range)
        return data | ({"default": self.default} if self.default is not None else {})

    @property
    def is_tensor(self) -> bool:
        return self.dtype in TENSOR_DTYPES

    @property
    def fixed_batch(self) -> int | None:
        """The rows the graph takes per call when its batch axis has a fixed size (model-zoo CNNs: 1)."""
        if self.batch_axis is None or self.batch_axis >= len(self.shape):
            return None
        size = self.shape[self.batch_axis]
        return size if isinstance(size, int) and size > 0 else None

    def describe(self) -> str:
        dims = ", ".join(
            f"{d} (rows)" if axis == self.batch_axis and isinstance(d, int) else str(d)
            for axis, d in enumerate(self.shape)
        )
        return f"{self.name}: {self.dtype}[{dims}]" + (" (given once per request)" if self.batch_axis is None else "")


_MAP_SEQUENCE = re.compile(r"seq\(map\((string|int64),(float32|float64|int64|string)\)\)")


@dataclass(frozen=True)
class DimBounds:
    """Sizes a request may give a symbolic non-batch dimension (sequence length, image height)."""

    min: int = 1
    max: int | None = None

    def __post_init__(self) -> None:
        if self.min < 1 or (self.max is not None and self.max < self.min):
            raise ValueError(f"dimension bounds {self.min}..{self.max} must satisfy 1 <= min <= max")

    def describe(self) -> str:
        return f"{self.min}..{self.max if self.max is not None else ''}"


def _build(cls: type[T], data: Any, section: str) -> T:
    """A section dataclass from its JSON object: unknown keys and wrong types are ManifestErrors."""
    if not isinstance(data, dict):
        raise ManifestError(f"manifest section {section} must be an object, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known - {"kind"})
    if unknown:
        raise ManifestError(f"manifest section {section} has unknown fields {unknown}; it takes {sorted(known)}")
    try:
        return cls(**{k: v for k, v in data.items() if k != "kind"})
    except (TypeError, ValueError) as exc:
        raise ManifestError(f"manifest section {section}: {exc}") from exc


@dataclass(frozen=True)
class TensorPreprocessing:
    """Clients send tensors as JSON arrays; nothing to decode."""

    kind: ClassVar[str] = "tensor"
    extras: ClassVar[tuple[str, ...]] = ()


@dataclass(frozen=True)
class ImagePreprocessing:
    """Clients may send PNG or JPEG images, resized and normalised into `input`."""

    kind: ClassVar[str] = "image"
    extras: ClassVar[tuple[str, ...]] = ("image",)
    size: tuple[int, int]
    """[height, width] the model takes."""
    input: str | None = None
    mode: str = "RGB"
    scale: float = 1 / 255
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    layout: str = "NCHW"

    def __post_init__(self) -> None:
        try:
            size = (int(self.size[0]), int(self.size[1]))
        except (TypeError, ValueError, IndexError):
            raise ValueError("image preprocessing needs size: [height, width]") from None
        if min(size) <= 0:
            raise ValueError(f"image size {list(size)} must be positive")
        if self.mode not in ("RGB", "L"):
            raise ValueError(f"image mode {self.mode!r} must be RGB or L")
        if self.layout not in ("NCHW", "NHWC"):
            raise ValueError(f"image layout {self.layout!r} must be NCHW or NHWC")
        channels = 1 if self.mode == "L" else 3
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None:
                value = tuple(float(v) for v in value)
                if len(value) != channels:
                    raise ValueError(f"image {name} needs {channels} values for mode {self.mode}")
                object.__setattr__(self, name, value)
        if self.std is not None and 0.0 in self.std:
            raise ValueError("image std must not contain 0")
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "scale", float(self.scale))

    @property
    def channels(self) -> int:
        return 1 if self.mode == "L" else 3


@dataclass(frozen=True)
class TextPreprocessing:
    """Clients may send text, tokenized with the bundle's tokenizer.json into `ids` (and `mask`, and
    zeros into `type_ids`: one segment, as BERT takes a single sentence)."""

    kind: ClassVar[str] = "text"
    extras: ClassVar[tuple[str, ...]] = ("text",)
    tokenizer: str = "tokenizer.json"
    max_length: int = 128
    ids: str | None = None
    mask: str | None = None
    type_ids: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.max_length, int) or self.max_length <= 0:
            raise ValueError(f"text max_length {self.max_length!r} must be a positive integer")
        if "/" in self.tokenizer or self.tokenizer.startswith("."):
            raise ValueError(f"text tokenizer {self.tokenizer!r} must be a file name inside the model folder")


Preprocessing = TensorPreprocessing | ImagePreprocessing | TextPreprocessing
PREPROCESSING: dict[str, type[Preprocessing]] = {
    cls.kind: cls for cls in (TensorPreprocessing, ImagePreprocessing, TextPreprocessing)
}


def preprocessing_from_dict(data: Any) -> Preprocessing:
    kind = data.get("kind", "tensor") if isinstance(data, dict) else None
    if kind not in PREPROCESSING:
        raise ManifestError(f'preprocessing "kind" must be one of {sorted(PREPROCESSING)}, got {kind!r}')
    return _build(PREPROCESSING[kind], data, f"preprocessing ({kind})")


def preprocessing_to_dict(preprocessing: Preprocessing) -> dict[str, Any]:
    return {"kind": preprocessing.kind} | {k: v for k, v in asdict(preprocessing).items() if v is not None}


DEFAULT_TOP_K = 5


@dataclass(frozen=True)
class Postprocessing:
    """What /predict answers with: the outputs it returns (None: every one; empty: none, for a
    classifier's predictions alone) and how many classes per row the predictions rank."""

    outputs: tuple[str, ...] | None = None
    top_k: int = DEFAULT_TOP_K

    def __post_init__(self) -> None:
        if self.outputs is not None:
            if isinstance(self.outputs, str) or not all(isinstance(name, str) for name in self.outputs):
                raise ValueError(f"postprocessing outputs {self.outputs!r} must be a list of output names")
            object.__setattr__(self, "outputs", tuple(self.outputs))
        if not isinstance(self.top_k, int) or isinstance(self.top_k, bool) or self.top_k < 1:
            raise ValueError(f"postprocessing top_k {self.top_k!r} must be a positive integer")

    def returned(self, names: list[str]) -> list[str]:
        return names if self.outputs is None else [name for name in names if name in self.outputs]


@dataclass(frozen=True)
class RuntimeHints:
    """How the packager measured the model should run."""

    memory_mb: int | None = None
    intra_op_threads: int | None = None


@dataclass(frozen=True)
class RequestLimits:
    """What one request may ask of the function, checked before any work: derived at pack time from the
    measured memory and latency per row, the function's MemorySize and its timeout."""

    max_rows: int | None = None
    """Rows per request; None when the model takes no rows (every input given once)."""
    max_text_chars: int = 65_536
    """Characters of one text kept for tokenizing (the tokenizer truncates to max_length tokens anyway)."""
    max_pixels: int = 40_000_000
    """Pixels of all images in one request together, read from their headers before decoding."""
    basis: str = ""
    """How the limits were derived, for the error messages and the report."""


@dataclass(frozen=True)
class ModelMetrics:
    """What the packager measured on the shipped model (and on fp32, for comparison)."""

    quality: float | None = None
    quality_kind: str = ""
    size_bytes: int | None = None
    p50_ms: float | None = None
    p50_batch8_ms: float | None = None
    peak_rss_mb: float | None = None
    init_ms: float | None = None
    baseline_quality: float | None = None
    baseline_p50_ms: float | None = None
    baseline_size_bytes: int | None = None


@dataclass(frozen=True)
class GenerationSpec:
    """A text-generation bundle: the model folder onnxruntime-genai loads, and what one request may ask."""

    context_length: int
    """Prompt and completion tokens together."""
    files: dict[str, str]
    """Every file of the model folder (model.onnx, its weights, genai_config.json, tokenizer files) -> sha256."""
    eos_token_ids: tuple[int, ...] = ()
    chat_template: bool = True
    """Whether the tokenizer carries a chat template (/v1/chat/completions needs one)."""
    default_max_tokens: int = 256
    """Completion tokens when a request does not say (OpenAI's default is "up to the context"); the room left
    in the context bounds it too."""
    buffered_seconds: float = 25.0
    """Generation time a non-streamed answer may take: API Gateway answers 504 after 29 s."""
    model_type: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "eos_token_ids", tuple(int(i) for i in self.eos_token_ids))
        if not isinstance(self.context_length, int) or self.context_length < 2:
            raise ValueError(f"generation context_length {self.context_length!r} must be an integer of at least 2")
        if not isinstance(self.files, dict) or not self.files:
            raise ValueError("generation files must map each file of the model folder to its sha256")
        for name in self.files:
            if "/" in name or name.startswith("."):
                raise ValueError(f"generation file {name!r} must be a file name inside the model folder")
        if self.default_max_tokens < 1:
            raise ValueError("generation default_max_tokens must be at least 1")
        if self.buffered_seconds <= 0:
            raise ValueError("generation buffered_seconds must be positive")

    @property
    def digest(self) -> str:
        """One sha256 over the folder: its files' names and digests, in name order."""
        lines = "".join(f"{name} {digest}\n" for name, digest in sorted(self.files.items()))
        return hashlib.sha256(lines.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    sha256: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    model_file: str = MODEL_FILE
    task: Task = Task.GENERIC
    labels: tuple[str, ...] = ()
    preprocessing: Preprocessing = field(default_factory=TensorPreprocessing)
    classifier_output: str | None = None
    """The output holding class scores (logits or probabilities) when the model is a classifier."""
    dims: dict[str, DimBounds] = field(default_factory=dict)
    """Bounds on the symbolic non-batch dimensions, by name."""
    recipe: str = "fp32"
    metrics: ModelMetrics = field(default_factory=ModelMetrics)
    runtime: RuntimeHints = field(default_factory=RuntimeHints)
    limits: RequestLimits = field(default_factory=RequestLimits)
    postprocessing: Postprocessing = field(default_factory=Postprocessing)
    generation: GenerationSpec | None = None
    """Set for Task.TEXT_GENERATION bundles, whose model is a folder (`model_file` names its graph)."""
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
                model_file=str(data.get("model_file", MODEL_FILE)),
                sha256=str(data["sha256"]),
                inputs=tuple(TensorSpec.from_dict(t) for t in data["inputs"]),
                outputs=tuple(TensorSpec.from_dict(t) for t in data["outputs"]),
                task=Task(data.get("task", Task.GENERIC.value)),
                labels=tuple(str(label) for label in data.get("labels", ())),
                preprocessing=preprocessing_from_dict(data.get("preprocessing", {"kind": "tensor"})),
                classifier_output=data.get("classifier_output"),
                dims={str(k): _build(DimBounds, v, f"dims.{k}") for k, v in (data.get("dims") or {}).items()},
                recipe=str(data.get("recipe", "fp32")),
                metrics=_build(ModelMetrics, data.get("metrics", {}), "metrics"),
                runtime=_build(RuntimeHints, data.get("runtime", {}), "runtime"),
                limits=_build(RequestLimits, data.get("limits", {}), "limits"),
                postprocessing=_build(Postprocessing, data.get("postprocessing", {}), "postprocessing"),
                generation=_build(GenerationSpec, data["generation"], "generation") if data.get("generation") else None,
                format_version=version,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"manifest is missing or has a malformed field: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "name": self.name,
            "version": self.version,
            "model_file": self.model_file,
            "sha256": self.sha256,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "task": self.task.value,
            "labels": list(self.labels),
            "preprocessing": preprocessing_to_dict(self.preprocessing),
            "classifier_output": self.classifier_output,
            "dims": {name: asdict(bounds) for name, bounds in self.dims.items()},
            "recipe": self.recipe,
            "metrics": asdict(self.metrics),
            "runtime": asdict(self.runtime),
            "limits": asdict(self.limits),
            "postprocessing": asdict(self.postprocessing),
        } | ({"generation": asdict(self.generation)} if self.generation is not None else {})

    def __post_init__(self) -> None:
        names = [spec.name for spec in self.outputs]
        if self.classifier_output is not None and self.classifier_output not in names:
            raise ManifestError(f"classifier_output {self.classifier_output!r} is not one of the outputs {names}")
        unknown = sorted(set(self.postprocessing.outputs or ()) - set(names))
        if unknown:
            raise ManifestError(f"postprocessing names outputs {unknown} the model does not have; it has {names}")
        if (self.task is Task.TEXT_GENERATION) != (self.generation is not None):
            raise ManifestError("a text-generation manifest needs its generation section, and only it has one")
        batches = {spec.fixed_batch for spec in self.inputs if spec.batch_axis is not None}
        if len(batches) > 1:
            raise ManifestError(f"inputs disagree on their batch size: {sorted(map(str, batches))}")

    @functools.cached_property
    def fixed_batch(self) -> int | None:
        """Rows per call when the graph's batch axis is fixed, else None (any number of rows)."""
        return next((spec.fixed_batch for spec in self.inputs if spec.batch_axis is not None), None)

    @functools.cached_property
    def required_inputs(self) -> tuple[str, ...]:
        """The inputs a request must send: those without a default."""
        return tuple(spec.name for spec in self.inputs if spec.default is None)

    @functools.cached_property
    def batched(self) -> bool:
        """Whether requests carry rows at all (a model whose inputs all come once per request does not)."""
        return any(spec.batch_axis is not None for spec in self.inputs)

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def load(cls, model_dir: Path) -> Manifest:
        path = model_dir / MANIFEST_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ManifestError(f"no manifest at {path}: is this a lambdafit bundle?") from exc
        except (OSError, ValueError) as exc:
            raise ManifestError(f"cannot read manifest {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ManifestError(f"manifest {path} is not a JSON object")
        return cls.from_dict(data)


def bundle_task(model_dir: Path) -> Task | None:
    """The task a bundle's manifest names, read without checking the rest (None when unreadable): lets the
    entry point pick the generation handler before loading anything."""
    try:
        return Task(json.loads((model_dir / MANIFEST_FILE).read_text(encoding="utf-8")).get("task"))
    except (OSError, ValueError, AttributeError):
        return None


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
