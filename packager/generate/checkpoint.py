"""A decoder checkpoint folder, read before any slow work: its architecture (one onnxruntime-genai's
builder takes), weights (safetensors only), tokenizer and chat template."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from handlers.errors import reason
from packager.errors import ModelLoadError

if TYPE_CHECKING:
    from packager.config import PackConfig

TEXT_GENERATION = "text-generation"

ARCHITECTURES = (
    "LlamaForCausalLM",
    "MistralForCausalLM",
    "Qwen2ForCausalLM",
    "Qwen3ForCausalLM",
    "Phi3ForCausalLM",
    "PhiForCausalLM",
    "GemmaForCausalLM",
    "Gemma2ForCausalLM",
    "Gemma3ForCausalLM",
    "GraniteForCausalLM",
    "OlmoForCausalLM",
    "NemotronForCausalLM",
    "SmolLM3ForCausalLM",
    "InternLM2ForCausalLM",
    "Ernie4_5ForCausalLM",
)
"""Text-only decoders onnxruntime-genai 0.18's model builder exports (Llama, Mistral, Qwen2 and Phi-3 are
packed in lambdafit's tests; the rest are the builder's word)."""
REFUSED = {
    "GPT2LMHeadModel": "GPT-2 (learned absolute positions, fused Conv1D attention) is not among the architectures "
    "onnxruntime-genai's model builder exports, and lambdafit does not hand-build a KV-cache graph it could not "
    "serve with the same generator",
}
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"
SAFETENSORS = ("model.safetensors", "model.safetensors.index.json")


@dataclass(frozen=True)
class Checkpoint:
    folder: Path
    architecture: str
    model_type: str
    context_length: int
    tied_embeddings: bool
    chat_template: bool

    @property
    def name(self) -> str:
        return self.folder.name


def is_generation(config: PackConfig) -> bool:
    """`--task text-generation`, or no task and a checkpoint folder holding a causal language model."""
    if config.task is not None:
        return config.task == TEXT_GENERATION
    return is_decoder_folder(Path(config.model))


def is_decoder_folder(path: Path) -> bool:
    """Whether `path` is a checkpoint folder whose config names a causal language model."""
    try:
        data = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    architectures = data.get("architectures") if isinstance(data, dict) else None
    first = str(architectures[0]) if isinstance(architectures, list) and architectures else ""
    return first.endswith(("ForCausalLM", "LMHeadModel"))


def read_checkpoint(folder: Path) -> Checkpoint:
    """The checkpoint, or a ModelLoadError that says what is missing or unsupported and what to do."""
    if not folder.is_dir():
        raise ModelLoadError(f"{folder} is not a folder: --task text-generation packs a Hugging Face checkpoint folder")
    data = _json(folder / "config.json")
    architectures = data.get("architectures") or []
    architecture = str(architectures[0]) if isinstance(architectures, list) and architectures else ""
    if architecture in REFUSED:
        raise ModelLoadError(f"{folder} holds {architecture}: {REFUSED[architecture]}. Use a checkpoint of "
                             f"one of: {', '.join(ARCHITECTURES)}")  # fmt: skip
    if architecture not in ARCHITECTURES:
        raise ModelLoadError(
            f"{folder} holds {architecture or 'no architecture (config.json names none)'}, which onnxruntime-genai's "
            f"model builder does not export as a text decoder; lambdafit packs {', '.join(ARCHITECTURES)}"
        )
    weights = [folder / name for name in SAFETENSORS if (folder / name).is_file()]
    if not weights:
        pickled = (folder / "pytorch_model.bin").is_file()
        raise ModelLoadError(
            f"{folder} has no model.safetensors"
            + (" (only pytorch_model.bin, a pickle that runs code when loaded)" if pickled else "")
            + ": save the model there with save_pretrained() from transformers"
        )
    if not (folder / TOKENIZER_FILE).is_file():
        raise ModelLoadError(
            f"{folder} has no {TOKENIZER_FILE}: the endpoint tokenizes with it (onnxruntime-genai reads the fast "
            "tokenizer's file); save it with the model's AutoTokenizer.save_pretrained()"
        )
    tokenizer_config = _json(folder / TOKENIZER_CONFIG) if (folder / TOKENIZER_CONFIG).is_file() else {}
    chat = (folder / CHAT_TEMPLATE_FILE).is_file() or bool(tokenizer_config.get("chat_template"))
    context = int(data.get("max_position_embeddings") or data.get("seq_length") or 0)
    if context < 2:
        raise ModelLoadError(f"{folder}/config.json gives no max_position_embeddings: the context length is unknown")
    return Checkpoint(
        folder=folder,
        architecture=architecture,
        model_type=str(data.get("model_type") or ""),
        context_length=context,
        tied_embeddings=bool(data.get("tie_word_embeddings", False)),
        chat_template=chat,
    )


def count_parameters(folder: Path) -> int:
    """Numbers in the checkpoint's safetensors, read from their headers (no weights are loaded)."""
    import struct

    total = 0
    for path in sorted(folder.glob("*.safetensors")):
        with path.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
        for name, tensor in header.items():
            if name != "__metadata__":
                count = 1
                for dim in tensor["shape"]:
                    count *= int(dim)
                total += count
    return total


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {path}: {reason(exc)}") from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} must hold a JSON object")
    return data
