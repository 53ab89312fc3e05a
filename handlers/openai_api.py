"""The OpenAI-compatible API of a text-generation bundle: `/v1/chat/completions`, `/v1/completions` (with
`stream: true` as server-sent events ending in `data: [DONE]`), `/v1/models`, and errors in OpenAI's
shape, `{"error": {"message", "type", "param", "code"}}`, so that the official clients work unchanged.

Requests are checked before any token is generated: a prompt longer than the context, `max_tokens`
beyond it, an unknown role or a sampling value out of range is a 400 naming the parameter.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from handlers.app import RoutedEndpoint, read_json
from handlers.errors import (
    BadRequestError,
    ManifestError,
    ModelNotReadyError,
    NotFoundError,
    ServiceError,
    reason,
)
from handlers.events import Response
from handlers.generation import FinishReason, Generation, GenerationRequest, LanguageModel, Sampling
from handlers.logs import logger
from handlers.routes import GENERATION_ROUTES, RouteTable
from handlers.streaming import SSE_HEADERS, StreamingResponse, sse

if TYPE_CHECKING:
    from handlers.contract import RuntimeSettings
    from handlers.events import Request
    from handlers.metrics import RequestMetrics

ROLES = ("system", "developer", "user", "assistant")
MAX_STOP_STRINGS = 8
SAMPLING_LIMITS = "temperature 0..2, top_p in (0, 1], top_k >= 0 (or -1 for none), repetition_penalty > 0"
OWNER = "lambdafit"


class InvalidRequestError(BadRequestError):
    """A 400 in OpenAI's shape, naming the parameter at fault."""

    def __init__(self, message: str, param: str | None = None, code: str = "invalid_request") -> None:
        super().__init__(message, code=code)
        self.param = param


def error_body(error: ServiceError) -> dict[str, Any]:
    """OpenAI's error object: what the client failed at is an invalid_request_error, the rest server_error."""
    kind = "invalid_request_error" if error.status < 500 else "server_error"
    return {"error": {"message": error.message, "type": kind, "param": getattr(error, "param", None),
                      "code": error.code}}  # fmt: skip


@dataclass(frozen=True)
class Prompt:
    """What the model continues, and how the answer is shaped."""

    ids: Any
    chat: bool


@dataclass(frozen=True)
class Parameters:
    model: str
    max_tokens: int | None
    sampling: Sampling
    stop: tuple[str, ...]
    stream: bool
    include_usage: bool


def _number(body: dict[str, Any], name: str, default: float, low: float, high: float, *, open_low: bool) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidRequestError(f"{name} must be a number ({SAMPLING_LIMITS}), not {value!r}", name)
    if value < low or (open_low and value == low) or value > high:
        raise InvalidRequestError(f"{name} {value} is out of range ({SAMPLING_LIMITS})", name)
    return float(value)


def _integer(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequestError(f"{name} must be an integer, not {value!r}", name)
    return value


def _unsupported(body: dict[str, Any]) -> None:
    """Parameters this endpoint cannot honour are refused rather than silently ignored."""
    checks: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
        ("n", lambda v: v not in (None, 1), "n must be 1: one choice per request"),
        ("best_of", lambda v: v not in (None, 1), "best_of must be 1"),
        ("logprobs", lambda v: v not in (None, False, 0), "logprobs are not returned by this endpoint"),
        ("top_logprobs", lambda v: v not in (None, 0), "logprobs are not returned by this endpoint"),
        ("echo", lambda v: v not in (None, False), "echo is not supported"),
        ("suffix", lambda v: v not in (None, ""), "suffix (insertion) is not supported"),
        ("tools", lambda v: bool(v), "tools are not supported by this model"),
        ("functions", lambda v: bool(v), "functions are not supported by this model"),
        ("logit_bias", lambda v: bool(v), "logit_bias is not supported"),
        ("presence_penalty", lambda v: v not in (None, 0, 0.0), "presence_penalty is not supported: use repetition_penalty"),
        ("frequency_penalty", lambda v: v not in (None, 0, 0.0), "frequency_penalty is not supported: use repetition_penalty"),
        ("response_format", lambda v: v not in (None, {"type": "text"}), "response_format other than text is not supported"),
    )  # fmt: skip
    for name, bad, message in checks:
        if bad(body.get(name)):
            raise InvalidRequestError(message, name, code="unsupported_parameter")


def parameters(body: Any, served: str) -> Parameters:
    """The request's generation parameters, checked: OpenAI's ranges, plus top_k and repetition_penalty
    as vLLM and llama.cpp's servers take them."""
    if not isinstance(body, dict):
        raise InvalidRequestError("the body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequestError(f'model is required: this endpoint serves "{served}"', "model")
    if model != served:
        raise NotFoundError(
            f"the model {model!r} does not exist; this endpoint serves {served!r}", code="model_not_found"
        )
    _unsupported(body)
    max_tokens = _integer(body, "max_completion_tokens")
    if max_tokens is None:
        max_tokens = _integer(body, "max_tokens")
    if max_tokens is not None and max_tokens < 1:
        name = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
        raise InvalidRequestError(f"{name} must be at least 1, not {max_tokens}", name)
    top_k = _integer(body, "top_k")
    if top_k is not None and top_k < -1:
        raise InvalidRequestError(f"top_k {top_k} is out of range ({SAMPLING_LIMITS})", "top_k")
    seed = _integer(body, "seed")
    sampling = Sampling(
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0, open_low=False),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0, open_low=True),
        top_k=max(0, top_k or 0),
        repetition_penalty=_number(body, "repetition_penalty", 1.0, 0.0, 100.0, open_low=True),
        seed=None if seed is None else seed % 2**31,
    )
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise InvalidRequestError(f"stream must be true or false, not {stream!r}", "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise InvalidRequestError("stream_options must be an object", "stream_options")
    return Parameters(model, max_tokens, sampling, _stops(body.get("stop")), stream, bool(options.get("include_usage")))


def _stops(value: Any) -> tuple[str, ...]:
    stops = [value] if isinstance(value, str) else value
    if stops is None:
        return ()
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise InvalidRequestError("stop must be a non-empty string or a list of them", "stop")
    if len(stops) > MAX_STOP_STRINGS:
        raise InvalidRequestError(f"stop takes at most {MAX_STOP_STRINGS} strings, not {len(stops)}", "stop")
    return tuple(stops)


def chat_messages(body: dict[str, Any]) -> list[dict[str, str]]:
    """The messages as the chat template takes them: role and text content."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError("messages must be a non-empty list of {role, content} objects", "messages")
    result = []
    for number, message in enumerate(messages):
        where = f"messages[{number}]"
        if not isinstance(message, dict):
            raise InvalidRequestError(f"{where} must be an object with role and content", where)
        role = message.get("role")
        if role not in ROLES:
            raise InvalidRequestError(
                f"{where}.role {role!r} is not supported; use one of {', '.join(ROLES)}", f"{where}.role"
            )
        result.append({"role": "system" if role == "developer" else str(role), "content": _text(message, where)})
    return result


def _text(message: dict[str, Any], where: str) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not (isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)):
                raise InvalidRequestError(
                    f"{where}.content may hold only text parts ({{type: text, text: ...}})", f"{where}.content"
                )
            parts.append(part["text"])
        return "".join(parts)
    raise InvalidRequestError(f"{where}.content must be a string or a list of text parts", f"{where}.content")


def completion_prompt(body: dict[str, Any], model: LanguageModel) -> Any:
    """`prompt` as token ids: a string, a one-string list, or token ids (a list of integers)."""
    import numpy as np

    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str | list):
        prompt = prompt[0]
    if isinstance(prompt, str):
        if not prompt:
            raise InvalidRequestError("prompt must not be empty", "prompt")
        return model.encode(prompt)
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
        if min(prompt) < 0 or max(prompt) >= model.vocab_size:
            raise InvalidRequestError(f"prompt token ids must be within 0..{model.vocab_size - 1}", "prompt")
        return np.asarray(prompt, dtype=np.int32)
    raise InvalidRequestError("prompt must be one string or one list of token ids (one prompt per request)", "prompt")


def plan(prompt_ids: Any, params: Parameters, model: LanguageModel, deadline: float | None) -> GenerationRequest:
    """How many tokens to generate: what was asked, bounded by the context; refused when it cannot fit."""
    context = model.context_length
    used = len(prompt_ids)
    if used == 0:
        raise InvalidRequestError("the prompt has no tokens", "prompt")
    if used >= context:
        raise InvalidRequestError(
            f"this model's maximum context length is {context} tokens; the prompt has {used}: shorten it",
            "messages",
            code="context_length_exceeded",
        )
    if params.max_tokens is not None and used + params.max_tokens > context:
        raise InvalidRequestError(
            f"this model's maximum context length is {context} tokens; you requested {used + params.max_tokens} "
            f"({used} in the prompt, {params.max_tokens} for the completion): lower max_tokens to {context - used} "
            "or less",
            "max_tokens",
            code="context_length_exceeded",
        )
    wanted = params.max_tokens if params.max_tokens is not None else model.spec.default_max_tokens
    return GenerationRequest(prompt_ids, min(wanted, context - used), params.sampling, params.stop, deadline)


class Holder:
    """The model, or why it is not there yet: a failed load answers 503 and is retried with backoff."""

    RETRY_FIRST_S = 1.0
    RETRY_MAX_S = 60.0

    def __init__(self, settings: RuntimeSettings | None, model: LanguageModel | None = None) -> None:
        self.settings = settings
        self.model = model
        self.failure: str | None = None
        self.attempts = 0
        self.next_attempt = 0.0
        if model is None and settings is not None:
            self.load()

    def load(self) -> None:
        assert self.settings is not None
        try:
            self.model = LanguageModel.load(self.settings)
            self.failure = None
            return
        except ManifestError as exc:
            kind, why = exc.kind, str(exc)
        except OSError as exc:
            kind, why = "unreadable_model", str(exc)
        except Exception as exc:
            kind, why = "corrupt_model", f"onnxruntime-genai could not load the model: {reason(exc)}"
        logger.error("model failed to load", extra={"model_dir": str(self.settings.model_dir), "reason": why})
        self.failure = kind
        self.next_attempt = time.monotonic() + min(self.RETRY_MAX_S, self.RETRY_FIRST_S * 2**self.attempts)
        self.attempts += 1

    def require(self) -> LanguageModel:
        if self.model is None and self.settings is not None and time.monotonic() >= self.next_attempt:
            self.load()
        if self.model is None:
            raise ModelNotReadyError(f"the model is not loaded ({self.failure or 'starting'}); retry shortly")
        return self.model


class GenerationEndpoint(RoutedEndpoint):
    """The routes of handlers.routes.GENERATION_ROUTES, answered in OpenAI's shapes."""

    def __init__(self, holder: Holder, metrics: RequestMetrics) -> None:
        super().__init__(metrics, RouteTable(GENERATION_ROUTES))
        self.holder = holder
        self.latency_ms: float | None = None
        self.deadline: float | None = None
        """When the current invocation must have answered (from Lambda's context)."""

    def error_body(self, error: ServiceError) -> dict[str, Any]:
        return error_body(error)

    # The routes' endpoints, as named in handlers.routes.GENERATION_ROUTES.

    def health(self, request: Request) -> Response:
        try:
            self.holder.require()
        except ModelNotReadyError:
            body = {"status": "unavailable", "model_ready": False, "reason": self.holder.failure or "starting"}
            return Response(503, json.dumps(body))
        return Response(200, json.dumps({"status": "ok", "model_ready": True}))

    def list_models(self, request: Request) -> Response:
        model = self.holder.require()
        return Response(200, json.dumps({"object": "list", "data": [_model_card(model)]}))

    def retrieve_model(self, request: Request, model: str) -> Response:
        loaded = self.holder.require()
        if model != loaded.manifest.name:
            raise NotFoundError(
                f"the model {model!r} does not exist; this endpoint serves {loaded.manifest.name!r}",
                code="model_not_found",
            )
        return Response(200, json.dumps(_model_card(loaded)))

    def chat_completions(self, request: Request) -> Response:
        model = self.holder.require()
        body = _read(request)
        params = parameters(body, model.manifest.name)
        messages = chat_messages(body)
        if not model.spec.chat_template:
            raise InvalidRequestError(
                "this model has no chat template: call /v1/completions with a prompt", "messages", "no_chat_template"
            )
        ids = model.encode(model.chat_prompt(messages))
        return self._complete(model, ids, params, chat=True)

    def completions(self, request: Request) -> Response:
        model = self.holder.require()
        body = _read(request)
        params = parameters(body, model.manifest.name)
        return self._complete(model, completion_prompt(body, model), params, chat=False)

    def _complete(self, model: LanguageModel, ids: Any, params: Parameters, *, chat: bool) -> Response:
        deadline = self.deadline
        if not params.stream:
            buffered = time.monotonic() + model.spec.buffered_seconds
            deadline = buffered if deadline is None else min(deadline, buffered)
        planned = plan(ids, params, model, deadline)
        shape = Shape(chat, params.model)
        if params.stream:
            events = self._events(model, planned, shape, params)
            return StreamingResponse(200, "", "text/event-stream", dict(SSE_HEADERS), chunks=events)
        start = time.perf_counter()
        generation = model.generate(planned)
        try:
            text = "".join(generation)
        finally:
            generation.close()
        self.latency_ms = (time.perf_counter() - start) * 1000
        return Response(200, json.dumps(shape.whole(text, generation), separators=(",", ":")))

    def _events(
        self, model: LanguageModel, planned: GenerationRequest, shape: Shape, params: Parameters
    ) -> Iterator[str]:
        """The SSE stream: a role chunk (chat), text deltas as they come, the finish, usage if asked, [DONE].
        The generator (and its KV cache) exists only while the stream is iterated: closing the stream (a
        client that went away) stops generation and frees it."""
        start = time.perf_counter()
        generation: Generation | None = None
        try:
            if shape.chat:
                yield sse(shape.chunk("", None, first=True))
            generation = model.generate(planned)
            for text in generation:
                yield sse(shape.chunk(text, None))
            yield sse(shape.chunk("", generation.finish_reason))
            if params.include_usage:
                yield sse(shape.usage_chunk(generation))
        except Exception as exc:
            logger.exception("generation failed mid-stream")
            failure = ServiceError(f"generation failed: {type(exc).__name__}", code="generation_failed")
            yield sse(error_body(failure))
        finally:
            if generation is not None:
                generation.close()
            self.latency_ms = (time.perf_counter() - start) * 1000
        yield "data: [DONE]\n\n"


def _read(request: Request) -> dict[str, Any]:
    body = read_json(request)
    if not isinstance(body, dict):
        raise InvalidRequestError("the body must be a JSON object")
    return body


def _model_card(model: LanguageModel) -> dict[str, Any]:
    return {"id": model.manifest.name, "object": "model", "created": int(model.loaded_at), "owned_by": OWNER}


class Shape:
    """OpenAI's response and chunk objects, for chat or text completions."""

    def __init__(self, chat: bool, model: str) -> None:
        self.chat = chat
        self.model = model
        self.id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        self.created = int(time.time())
        self.object = "chat.completion" if chat else "text_completion"

    def _head(self, chunk: bool) -> dict[str, Any]:
        kind = self.object + (".chunk" if chunk and self.chat else "")
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model,
                "system_fingerprint": OWNER}  # fmt: skip

    def whole(self, text: str, generation: Generation) -> dict[str, Any]:
        reason = (generation.finish_reason or FinishReason.LENGTH).value
        if self.chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                      "finish_reason": reason}  # fmt: skip
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": reason}
        return self._head(False) | {"choices": [choice], "usage": usage(generation)}

    def chunk(self, text: str, finish: FinishReason | None, *, first: bool = False) -> dict[str, Any]:
        reason = finish.value if finish is not None else None
        if self.chat:
            delta: dict[str, Any] = (
                {"role": "assistant", "content": ""} if first else ({"content": text} if text else {})
            )
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": reason}
        return self._head(True) | {"choices": [choice]}

    def usage_chunk(self, generation: Generation) -> dict[str, Any]:
        return self._head(True) | {"choices": [], "usage": usage(generation)}


def usage(generation: Generation) -> dict[str, int]:
    return {
        "prompt_tokens": generation.prompt_tokens,
        "completion_tokens": generation.completion_tokens,
        "total_tokens": generation.prompt_tokens + generation.completion_tokens,
    }
