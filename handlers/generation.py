"""The language model at run time: onnxruntime-genai's generator (its KV cache, greedy search and
sampling), the tokenizer and chat template, and one request's decoding loop as an iterator of text.

onnxruntime-genai is imported when the model loads, never at import: the tensor handler pays nothing
for it. It loads onnxruntime's shared library itself, without onnxruntime's Python module.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from handlers.errors import ManifestError, UnprocessableError, reason
from handlers.manifest import GenerationSpec, Manifest, sha256_file

if TYPE_CHECKING:
    from handlers.contract import RuntimeSettings


class FinishReason(StrEnum):
    STOP = "stop"
    """An end-of-sequence token or a stop string."""
    LENGTH = "length"
    """max_tokens, the context, or the time a buffered answer may take."""


@dataclass(frozen=True)
class Sampling:
    """How the next token is picked: greedy at temperature 0, else sampled from the (top-k, top-p) cut."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    """0: no top-k cut."""
    repetition_penalty: float = 1.0
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def search_options(self, vocab_size: int) -> dict[str, Any]:
        options: dict[str, Any] = {"repetition_penalty": self.repetition_penalty}
        if self.greedy:
            return options | {"do_sample": False}
        options |= {
            "do_sample": True,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": min(self.top_k, vocab_size),
        }
        if self.seed is not None:
            options["random_seed"] = self.seed
        return options


@dataclass(frozen=True)
class GenerationRequest:
    prompt_ids: Any
    """numpy int32 token ids."""
    max_tokens: int
    sampling: Sampling = field(default_factory=Sampling)
    stop: tuple[str, ...] = ()
    deadline: float | None = None
    """time.monotonic() after which the loop stops with finish reason "length"."""


class Generation:
    """One request's decoding loop: iterate it for text as it is produced. Stop strings are cut out (text
    that could still become one is held back until it cannot); end-of-sequence tokens are never text.
    `close()` (or the end of the loop) frees the generator and its KV cache."""

    def __init__(self, model: LanguageModel, request: GenerationRequest) -> None:
        import onnxruntime_genai as og

        self.model = model
        self.request = request
        self.prompt_tokens = len(request.prompt_ids)
        self.completion_tokens = 0
        self.finish_reason: FinishReason | None = None
        self.first_token_s: float | None = None
        self._start = time.perf_counter()
        self._pending = ""
        self._hold = max((len(s) for s in request.stop), default=1) - 1
        params = og.GeneratorParams(model.model)
        params.set_search_options(
            max_length=self.prompt_tokens + request.max_tokens, **request.sampling.search_options(model.vocab_size)
        )
        self._generator: Any = og.Generator(model.model, params)
        self._stream: Any = model.tokenizer.create_stream()
        model.active += 1
        try:
            self._generator.append_tokens(request.prompt_ids)
        except Exception:
            self.close()
            raise

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        while self.finish_reason is None:
            text = self._step()
            if text:
                return text
        raise StopIteration

    def _step(self) -> str:
        """One token: the text it makes safe to send (maybe empty), or the end."""
        request = self.request
        if self.completion_tokens >= request.max_tokens or (
            request.deadline is not None and time.monotonic() > request.deadline
        ):
            return self._finish(FinishReason.LENGTH)
        self._generator.generate_next_token()
        token = int(self._generator.get_next_tokens()[0])
        self.completion_tokens += 1
        if self.first_token_s is None:
            self.first_token_s = time.perf_counter() - self._start
        if token in self.model.eos_token_ids:
            return self._finish(FinishReason.STOP)
        self._pending += self._stream.decode(token)
        for stop in request.stop:
            at = self._pending.find(stop)
            if at >= 0:
                self._pending = self._pending[:at]
                return self._finish(FinishReason.STOP)
        keep = _longest_stop_prefix(self._pending, request.stop, self._hold)
        ready, self._pending = self._pending[: len(self._pending) - keep], self._pending[len(self._pending) - keep :]
        if self._generator.is_done():
            return ready + self._finish(FinishReason.LENGTH)
        return ready

    def _finish(self, why: FinishReason) -> str:
        rest, self._pending = self._pending, ""
        self.finish_reason = why
        self.close()
        return rest

    def close(self) -> None:
        """Free the KV cache now (a client that went away, or the end): idempotent."""
        if self._generator is not None:
            self._generator = None
            self._stream = None
            self.model.active -= 1
            if self.finish_reason is None:
                self.finish_reason = FinishReason.LENGTH

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self._start


def _longest_stop_prefix(text: str, stops: tuple[str, ...], hold: int) -> int:
    """Characters at the end of `text` that begin some stop string: they must wait for the next token."""
    for size in range(min(hold, len(text)), 0, -1):
        tail = text[-size:]
        if any(stop.startswith(tail) for stop in stops):
            return size
    return 0


@dataclass
class LanguageModel:
    """The model folder loaded by onnxruntime-genai, with its tokenizer."""

    manifest: Manifest
    spec: GenerationSpec
    model: Any
    tokenizer: Any
    vocab_size: int
    eos_token_ids: frozenset[int]
    timings: dict[str, float] = field(default_factory=dict)
    loaded_at: float = field(default_factory=time.time)
    active: int = 0
    """Generators alive (each holds a KV cache): 0 between requests, or something leaks."""

    @classmethod
    def load(cls, settings: RuntimeSettings, *, verify: bool = True) -> LanguageModel:
        start = time.perf_counter()
        manifest = Manifest.load(settings.model_dir)
        spec = manifest.generation
        if spec is None:
            raise ManifestError("the manifest has no generation section: this is not a text-generation bundle")
        if settings.model_uri is not None:
            raise ManifestError("text-generation bundles carry their model folder; MODEL_URI is not supported")
        for name, digest in spec.files.items():
            path = settings.model_dir / name
            if not path.is_file():
                raise ManifestError(f"model file {path} named by the manifest does not exist", "model_missing")
            if verify and sha256_file(path) != digest:
                raise ManifestError(
                    f"sha256 of {path} does not match the manifest: refusing to serve it", "checksum_mismatch"
                )
        verified = time.perf_counter()
        import onnxruntime_genai as og

        config = og.Config(str(settings.model_dir))
        config.clear_providers()
        model = og.Model(config)
        tokenizer = og.Tokenizer(model)
        vocab = _vocab_size(settings.model_dir)
        timings = {"verify_ms": (verified - start) * 1000, "session_ms": (time.perf_counter() - verified) * 1000}
        eos = frozenset(int(i) for i in (spec.eos_token_ids or tuple(tokenizer.eos_token_ids)))
        return cls(manifest, spec, model, tokenizer, vocab, eos, timings)

    @property
    def context_length(self) -> int:
        return self.spec.context_length

    def encode(self, text: str) -> Any:
        return self.tokenizer.encode(text)

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        """The chat template applied as the checkpoint defines it, ending where the assistant's turn begins."""
        try:
            return str(self.tokenizer.apply_chat_template(json.dumps(messages), add_generation_prompt=True))
        except Exception as exc:
            raise UnprocessableError(
                f"the model's chat template cannot render these messages: {reason(exc)}", code="chat_template_failed"
            ) from None

    def generate(self, request: GenerationRequest) -> Generation:
        return Generation(self, request)


def _vocab_size(model_dir: Path) -> int:
    from handlers.contract import GENAI_CONFIG_FILE

    try:
        return int(json.loads((model_dir / GENAI_CONFIG_FILE).read_text(encoding="utf-8"))["model"]["vocab_size"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ManifestError(f"cannot read the vocabulary size from {GENAI_CONFIG_FILE}: {exc}") from exc
