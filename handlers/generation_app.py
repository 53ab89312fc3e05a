"""The Lambda handler of a text-generation bundle, two ways: buffered (`handler(event, context)`, for the
managed Python runtime, HTTP APIs and `sam local`) and streamed (`handler.stream(event, context)`, for
the bundle's own runtime loop, handlers.bootstrap, and for `lambdafit serve`)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from handlers.app import LambdaContextKeys, parse_event
from handlers.events import EventShape, Request, Response
from handlers.logs import logger
from handlers.metrics import RequestMetrics
from handlers.openai_api import GenerationEndpoint, Holder
from handlers.streaming import HttpStream, StreamingResponse, Watched

if TYPE_CHECKING:
    from handlers.contract import RuntimeSettings

DEADLINE_MARGIN_S = 1.0
"""Generation stops this long before Lambda's deadline, so the answer ends cleanly (finish_reason length)."""


class GenerationHandler:
    def __init__(self, endpoint: GenerationEndpoint, metrics: RequestMetrics, load_ms: float) -> None:
        self.endpoint = endpoint
        self.metrics = metrics
        self.load_ms = load_ms
        self.context_keys = LambdaContextKeys()

    def _answer(self, event: Any, context: Any) -> tuple[type[EventShape], Response]:
        self.context_keys.update(context)
        endpoint = self.endpoint
        endpoint.latency_ms = None
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        endpoint.deadline = time.monotonic() + remaining() / 1000 - DEADLINE_MARGIN_S if remaining else None
        shape, request = parse_event(endpoint, event)
        if isinstance(request, Request):
            return shape, endpoint.handle(request, getattr(context, "function_version", None) or "$LATEST")
        return shape, request

    def _emit(self, status: int) -> None:
        self.metrics.emit(self.endpoint.latency_ms, 400 <= status < 500, self.load_ms)

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        shape, response = self._answer(event, context)
        if isinstance(response, StreamingResponse):
            response = response.buffered()
        self._emit(response.status)
        return shape.respond(response)

    def stream(self, event: dict[str, Any], context: Any) -> HttpStream:
        """Status and headers now; the body while it is generated. Metrics once it ends or is abandoned."""
        _, response = self._answer(event, context)
        stream = HttpStream.from_response(response)
        stream.chunks = Watched(stream.chunks, lambda: self._emit(response.status))
        return stream


def make_generation_handler(settings: RuntimeSettings) -> GenerationHandler:
    """Load the model now (Lambda's init phase) and return the handler; a failed load answers 503 and retries."""
    start = time.perf_counter()
    logger.append_keys(service=settings.service)
    holder = Holder(settings)
    load_ms = (time.perf_counter() - start) * 1000
    timings = {k: round(v, 2) for k, v in (holder.model.timings if holder.model else {}).items()}
    logger.info("model loaded" if holder.model else "model not loaded", extra={"load_ms": round(load_ms, 2)} | timings)
    metrics = RequestMetrics(settings.namespace, settings.service, enabled=settings.metrics)
    return GenerationHandler(GenerationEndpoint(holder, metrics), metrics, load_ms)
