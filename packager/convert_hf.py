"""Hugging Face checkpoint folders (config.json, safetensors, tokenizer files), loaded offline with
transformers' Auto classes and handed to lambdafit's own torch exporter.

The task comes from `config.architectures` (BertForSequenceClassification -> text-classification) or
`--task`. The checkpoint's tokenizer becomes the bundle's text preprocessing, its image processor the
image preprocessing, and `id2label` the class names. Only safetensors are loaded: a pickled
`pytorch_model.bin` runs code when it is read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from handlers.errors import reason
from handlers.manifest import DimBounds, ImagePreprocessing, TextPreprocessing
from packager.errors import ModelLoadError
from packager.export import SEQUENCE_DIM
from packager.load import LoadOptions, TorchModel, torch_model
from packager.preprocess import PreprocessingFiles

if TYPE_CHECKING:
    import tokenizers
    import torch
    from transformers import PreTrainedConfig, PreTrainedModel


class HfTask(StrEnum):
    TEXT_CLASSIFICATION = "text-classification"
    TOKEN_CLASSIFICATION = "token-classification"
    QUESTION_ANSWERING = "question-answering"
    FILL_MASK = "fill-mask"
    FEATURE_EXTRACTION = "feature-extraction"
    IMAGE_CLASSIFICATION = "image-classification"
    TEXT_GENERATION = "text-generation"


AUTO_CLASSES: dict[HfTask, str] = {
    HfTask.TEXT_CLASSIFICATION: "AutoModelForSequenceClassification",
    HfTask.TOKEN_CLASSIFICATION: "AutoModelForTokenClassification",
    HfTask.QUESTION_ANSWERING: "AutoModelForQuestionAnswering",
    HfTask.FILL_MASK: "AutoModelForMaskedLM",
    HfTask.FEATURE_EXTRACTION: "AutoModel",
    HfTask.IMAGE_CLASSIFICATION: "AutoModelForImageClassification",
}
ARCHITECTURE_TASKS: tuple[tuple[str, HfTask], ...] = (
    ("ForSequenceClassification", HfTask.TEXT_CLASSIFICATION),
    ("ForTokenClassification", HfTask.TOKEN_CLASSIFICATION),
    ("ForQuestionAnswering", HfTask.QUESTION_ANSWERING),
    ("ForMaskedLM", HfTask.FILL_MASK),
    ("ForImageClassification", HfTask.IMAGE_CLASSIFICATION),
    ("ForCausalLM", HfTask.TEXT_GENERATION),
    ("LMHeadModel", HfTask.TEXT_GENERATION),
)
"""Architecture name fragments and the task they imply; a bare `...Model` is feature-extraction."""
CLASSIFIER_TASKS = frozenset({HfTask.TEXT_CLASSIFICATION, HfTask.IMAGE_CLASSIFICATION})
"""Tasks whose output is [batch, classes] scores, so that id2label names the predictions."""
TASK_NAMES = ", ".join(task.value for task in HfTask)

SAFETENSORS = ("model.safetensors", "model.safetensors.index.json")
PICKLED = ("pytorch_model.bin", "pytorch_model.bin.index.json")
OTHER_FORMATS = {"tf_model.h5": "TensorFlow", "flax_model.msgpack": "Flax"}
TOKENIZER_FILE = "tokenizer.json"
VOCABULARY_FILES = (
    TOKENIZER_FILE,
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)
"""Files a tokenizer is built from; without one, transformers builds an empty tokenizer."""
PREPROCESSOR_FILE = "preprocessor_config.json"
MAX_TEXT_LENGTH = 512
EXAMPLE_TEXTS = ("Lambda serves this model.", "A second, longer sentence makes the first one padded.")
PIL_BILINEAR = 2
"""PIL's resample code for bilinear, which the handler's image codec uses."""


@dataclass(frozen=True)
class _Inputs:
    example: dict[str, torch.Tensor]
    preprocessing: PreprocessingFiles | None
    notes: tuple[str, ...]
    dims: dict[str, DimBounds] = dataclasses.field(default_factory=dict)


def load_checkpoint(folder: Path, options: LoadOptions) -> TorchModel:
    """The checkpoint as a torch module with an example, its labels and its request preprocessing."""
    data = _read_config(folder)
    os.environ["HF_HUB_OFFLINE"] = "1"
    import transformers

    _check_model_type(data, folder, transformers.__version__)
    task = resolve_task(data, options.task, folder)
    auto_name = AUTO_CLASSES[task]
    _check_weights(folder, auto_name)
    with _quiet():
        module, config = _load_module(folder, task, auto_name, transformers)
        main_input = module.main_input_name
        if main_input == "input_ids":
            inputs = _text_inputs(folder, module, config, options.work_dir)
        elif main_input == "pixel_values":
            inputs = _image_inputs(folder, config)
        else:
            raise ModelLoadError(
                f"{folder}: {type(module).__name__} takes {main_input}; lambdafit packs text and image checkpoints "
                "(export this one to ONNX yourself and pack the .onnx file)"
            )
    labels, label_notes = _labels(config, task)
    notes = (
        f"loaded {type(module).__name__} from {folder} for {task.value} with transformers {transformers.__version__}",
        *inputs.notes,
        *label_notes,
    )
    model = torch_model(module, inputs.example, {}, str(folder))
    return dataclasses.replace(model, labels=labels, preprocessing=inputs.preprocessing, notes=notes, dims=inputs.dims)


def resolve_task(data: dict[str, Any], task: str | None, folder: Path) -> HfTask:
    """`--task` if given, else what config.json's first architecture implies."""
    if task is not None:
        try:
            chosen = HfTask(task)
        except ValueError:
            raise ModelLoadError(f"--task {task!r} is not a task lambdafit packs; use one of {TASK_NAMES}") from None
        if chosen is HfTask.TEXT_GENERATION:
            raise ModelLoadError(_generation_message(folder, data))
        return chosen
    architectures = data.get("architectures") or []
    if not isinstance(architectures, list) or not architectures:
        raise ModelLoadError(
            f"{folder}/config.json names no architectures, so the task is unknown: pass --task (one of {TASK_NAMES})"
        )
    architecture = str(architectures[0])
    for fragment, implied in ARCHITECTURE_TASKS:
        if fragment in architecture:
            if implied is HfTask.TEXT_GENERATION:
                raise ModelLoadError(_generation_message(folder, data))
            return implied
    if architecture.endswith("Model") and "For" not in architecture:
        return HfTask.FEATURE_EXTRACTION
    raise ModelLoadError(f"{folder}: cannot tell the task of a {architecture}; pass --task (one of {TASK_NAMES})")


def _generation_message(folder: Path, data: dict[str, Any]) -> str:
    architecture = (data.get("architectures") or ["a causal language model"])[0]
    return (
        f"{folder} holds {architecture}, a text generator: `lambdafit pack {folder} --task text-generation` serves "
        "it with a KV cache behind an OpenAI-compatible API (packager.generate); pass --task feature-extraction "
        "to serve its hidden states instead"
    )


def _read_config(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {folder}/config.json: {reason(exc)}") from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"{folder}/config.json must hold a JSON object")
    return data


def _check_weights(folder: Path, auto_name: str) -> None:
    if any((folder / name).is_file() for name in SAFETENSORS):
        return
    if any((folder / name).is_file() for name in PICKLED):
        raise ModelLoadError(
            f"{folder} holds pytorch_model.bin, a pickle, which runs code when loaded; lambdafit loads safetensors, "
            "not pickles: convert it once where you trust the file, e.g. "
            f"python -c \"from transformers import {auto_name} as M; M.from_pretrained('{folder}').save_pretrained("
            f"'{folder}')\" writes model.safetensors"
        )
    other = [f"{kind} weights in {name}" for name, kind in OTHER_FORMATS.items() if (folder / name).is_file()]
    found = f" (only {other[0]})" if other else ""
    raise ModelLoadError(
        f"{folder} has no model.safetensors{found}: save the model there with save_pretrained() from transformers"
    )


def _check_model_type(data: dict[str, Any], folder: Path, version: str) -> None:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    model_type = data.get("model_type")
    if isinstance(model_type, str) and model_type in CONFIG_MAPPING:
        return
    custom = " (its config.json points to custom code in auto_map, which lambdafit does not run)"
    raise ModelLoadError(
        f"{folder}: model_type {model_type!r} is unknown to transformers {version}"
        f"{custom if 'auto_map' in data else ''}: upgrade transformers or export to ONNX yourself and pack the .onnx file"
    )


def _load_module(folder: Path, task: HfTask, auto_name: str, transformers: Any) -> tuple[PreTrainedModel, Any]:
    import torch

    auto = getattr(transformers, auto_name)
    try:
        config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
        module, info = auto.from_pretrained(
            folder, config=config, local_files_only=True, use_safetensors=True, dtype=torch.float32,
            output_loading_info=True,
        )  # fmt: skip
    except ValueError as exc:
        if "Unrecognized configuration class" in str(exc):
            raise ModelLoadError(
                f"{folder}: a {config.model_type} checkpoint cannot be loaded for {task.value} ({auto_name} does not "
                f"know {type(config).__name__}): pass the --task it was trained for"
            ) from None
        raise ModelLoadError(f"cannot load {folder} with {auto_name}: {reason(exc)}") from exc
    except Exception as exc:
        raise ModelLoadError(f"cannot load {folder} with {auto_name}: {reason(exc)}") from exc
    missing = sorted(info.get("missing_keys") or ())
    if missing:
        architecture = (getattr(config, "architectures", None) or ["?"])[0]
        raise ModelLoadError(
            f"{folder} ({architecture}) lacks {len(missing)} weights that {task.value} needs ({', '.join(missing[:3])}"
            f"{', ...' if len(missing) > 3 else ''}): they would be random; pass the --task the checkpoint was trained for"
        )
    return module.eval(), config


def _forward_parameters(module: Any) -> set[str]:
    return set(inspect.signature(module.forward).parameters)


def _text_inputs(folder: Path, module: Any, config: Any, work_dir: Path) -> _Inputs:
    """An example from the checkpoint's own tokenizer, and that tokenizer as the bundle's text preprocessing."""
    import torch

    takes = _forward_parameters(module)
    positions = int(getattr(config, "max_position_embeddings", 0) or 0)
    loaded = _tokenizer(folder, work_dir)
    if loaded is None:
        vocab = int(getattr(config, "vocab_size", 2) or 2)
        ids = torch.randint(0, vocab, (2, 8), generator=torch.Generator().manual_seed(0))
        example = {"input_ids": ids}
        if "attention_mask" in takes:
            example["attention_mask"] = torch.ones_like(ids)
        if "token_type_ids" in takes and int(getattr(config, "type_vocab_size", 0) or 0) > 1:
            example["token_type_ids"] = torch.zeros_like(ids)
        note = (
            f"{folder} has no tokenizer (tokenizer.json, or a vocabulary transformers converts to one): clients send "
            "token ids"
        )
        return _Inputs(example, None, (note,), _sequence_bounds(positions))
    shipped, type_ids_used, tokenizer_max = loaded
    longest = min(tokenizer_max, positions) if positions else tokenizer_max
    type_ids = "token_type_ids" if "token_type_ids" in takes and type_ids_used else None
    mask = "attention_mask" if "attention_mask" in takes else None
    encodings = shipped.tokenizer.encode_batch(list(EXAMPLE_TEXTS))
    ids = torch.tensor([e.ids for e in encodings], dtype=torch.int64)
    example = {"input_ids": ids}
    if mask:
        example[mask] = torch.tensor([e.attention_mask for e in encodings], dtype=torch.int64)
    if type_ids:
        example[type_ids] = torch.zeros_like(ids)
    preprocessing = TextPreprocessing(
        tokenizer=TOKENIZER_FILE, max_length=min(longest, MAX_TEXT_LENGTH), ids="input_ids", mask=mask,
        type_ids=type_ids,
    )  # fmt: skip
    wired = ", ".join(name for name in ("input_ids", mask, type_ids) if name)
    note = (
        f'text requests ({{"text": ...}}) are tokenized with the checkpoint\'s tokenizer into {wired}, '
        f"truncated to {preprocessing.max_length} tokens"
    )
    files = PreprocessingFiles(preprocessing, {TOKENIZER_FILE: shipped.path})
    return _Inputs(example, files, (note, *shipped.notes), _sequence_bounds(longest))


@dataclass(frozen=True)
class _Tokenizer:
    tokenizer: tokenizers.Tokenizer
    path: Path
    """tokenizer.json as it ships: the checkpoint's, with its own pad token set."""
    notes: tuple[str, ...]


def _tokenizer(folder: Path, work_dir: Path) -> tuple[_Tokenizer, bool, int] | None:
    """The checkpoint's fast tokenizer, whether it gives token_type_ids, and its model_max_length."""
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    if not any((folder / name).is_file() for name in VOCABULARY_FILES):
        return None
    try:
        hf = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except Exception:
        return None
    backend = getattr(hf, "backend_tokenizer", None)
    if not isinstance(backend, Tokenizer):
        return None
    tokenizer = Tokenizer.from_str(backend.to_str())
    tokenizer.no_truncation()
    pad_id = hf.pad_token_id if hf.pad_token_id is not None else 0
    pad_token = hf.pad_token or tokenizer.id_to_token(pad_id) or "[PAD]"
    tokenizer.enable_padding(pad_id=pad_id, pad_token=str(pad_token))
    path = work_dir / "tokenizer" / TOKENIZER_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(path))
    notes: tuple[str, ...] = ()
    if not (folder / TOKENIZER_FILE).is_file():
        notes = (f"{folder} has no tokenizer.json: built one with transformers' {type(hf).__name__}",)
    model_max_length = int(min(hf.model_max_length, 2**31))
    return _Tokenizer(tokenizer, path, notes), "token_type_ids" in hf.model_input_names, model_max_length


def _sequence_bounds(longest: int) -> dict[str, DimBounds]:
    """Token id tensors longer than the model's positions fail inside onnxruntime: refuse them with a 400."""
    return {SEQUENCE_DIM: DimBounds(1, longest)} if 0 < longest < 2**31 else {}


def _image_inputs(folder: Path, config: Any) -> _Inputs:
    """A random pixel batch at the model's size, and the checkpoint's image processor as the bundle's."""
    import torch

    channels = int(getattr(config, "num_channels", 3) or 3)
    processor = _read_processor(folder)
    notes: list[str] = []
    preprocessing = None
    if processor is None:
        size = _config_size(config, folder)
        notes.append(
            f"{folder} has no {PREPROCESSOR_FILE}: clients send pixel_values tensors (give --preprocess to take images)"
        )
    else:
        size, processor_notes = _processor_size(processor, config, folder)
        notes += processor_notes
        mean, std = processor.get("image_mean"), processor.get("image_std")
        normalize = processor.get("do_normalize", True) and mean is not None and std is not None
        image = ImagePreprocessing(
            size=size,
            input="pixel_values",
            mode="L" if channels == 1 else "RGB",
            scale=float(processor.get("rescale_factor", 1 / 255)) if processor.get("do_rescale", True) else 1.0,
            mean=_per_channel(mean, channels) if normalize else None,
            std=_per_channel(std, channels) if normalize else None,
            layout="NCHW",
        )
        preprocessing = PreprocessingFiles(image)
        notes.append(
            f'image requests ({{"image": base64}}) are resized to {size[0]}x{size[1]} and normalized as the '
            f"checkpoint's {PREPROCESSOR_FILE} says"
        )
    pixels = torch.rand(2, channels, *size, generator=torch.Generator().manual_seed(0))
    return _Inputs({"pixel_values": pixels}, preprocessing, tuple(notes))


def _read_processor(folder: Path) -> dict[str, Any] | None:
    path = folder / PREPROCESSOR_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {path}: {reason(exc)}") from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} must hold a JSON object")
    return data


def _processor_size(processor: dict[str, Any], config: Any, folder: Path) -> tuple[tuple[int, int], list[str]]:
    notes = []
    crop = processor.get("crop_size") if processor.get("do_center_crop") else None
    size = crop or processor.get("size")
    if isinstance(crop, dict):
        notes.append(
            "the checkpoint center-crops after resizing; the endpoint resizes the whole image to the crop size"
        )
    if isinstance(size, dict) and "height" in size and "width" in size:
        hw = (int(size["height"]), int(size["width"]))
    elif isinstance(size, dict) and "shortest_edge" in size:
        hw = (int(size["shortest_edge"]),) * 2
        notes.append("the checkpoint resizes the shortest edge; the endpoint resizes images to a square")
    elif isinstance(size, int):
        hw = (size, size)
    else:
        hw = _config_size(config, folder)
    if processor.get("resample", PIL_BILINEAR) != PIL_BILINEAR:
        notes.append("the endpoint resizes bilinearly; the checkpoint's processor uses another filter")
    return hw, notes


def _config_size(config: Any, folder: Path) -> tuple[int, int]:
    size = getattr(config, "image_size", None)
    if isinstance(size, int):
        return size, size
    if isinstance(size, list | tuple) and len(size) == 2:
        return int(size[0]), int(size[1])
    raise ModelLoadError(f"{folder}: neither {PREPROCESSOR_FILE} nor config.json gives the image size")


def _per_channel(value: Any, channels: int) -> tuple[float, ...]:
    values = [float(v) for v in value] if isinstance(value, list | tuple) else [float(value)]
    return tuple(values * channels) if len(values) == 1 else tuple(values)


def _labels(config: PreTrainedConfig, task: HfTask) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Class names from id2label in index order, unless they are transformers' placeholders LABEL_0, ...

    Only a [batch, classes] output takes names; token classes are listed in a note."""
    id2label = {int(k): str(v) for k, v in (config.id2label or {}).items()}
    labels = tuple(id2label.get(i, f"LABEL_{i}") for i in range(len(id2label)))
    placeholder = all(label == f"LABEL_{i}" for i, label in enumerate(labels))
    if len(labels) < 2 or task not in (*CLASSIFIER_TASKS, HfTask.TOKEN_CLASSIFICATION):
        return (), ()
    if task is HfTask.TOKEN_CLASSIFICATION:
        return (), () if placeholder else (
            f"the endpoint returns per-token logits; their classes: {', '.join(labels)}",
        )
    if placeholder:
        return (), ("config.json's id2label holds only placeholder names (LABEL_0, ...): pass --labels to name them",)
    return labels, ()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """transformers reports loading progress and notes; the packager reports what matters itself."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity(logging.ERROR)
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]
