"""Routing and HTTP shape: `Endpoint` answers the routes of `handlers.routes` for any event shape.

The dispatch is a dictionary lookup over the one route table (powertools' resolver costs 55-60 ms of
imports at cold start and most of the per-request overhead); logs, metrics and traces are powertools'.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools.metrics import Metrics, MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from handlers import v2
from handlers.contract import STATIC_DIR, RuntimeSettings
from handlers.errors import (
    BadRequestError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    ServiceError,
    UnsupportedMediaTypeError,
)
from handlers.events import JSON, Request, Response, RestEvent, shape_of
from handlers.logs import logger
from handlers.routes import RouteTable
from handlers.runtime import Service, load_service
from handlers.tensors import to_json, top_k

if TYPE_CHECKING:
    from collections.abc import Callable

    from handlers.runtime import ModelRuntime

MAX_BODY_BYTES = 6 * 1024 * 1024
"""Lambda's synchronous invoke payload limit, for requests and responses alike."""
TOP_K = 5
SERVER_VERSION = "0.1.0"


class Endpoint:
    """The model's HTTP API: one method per route endpoint, errors as JSON with a code."""

    def __init__(self, service: Service, metrics: Metrics, static_dir: Path | None = None) -> None:
        self.service = service
        self.metrics = metrics
        self.static_dir = static_dir
        self.table = RouteTable()

    def handle(self, request: Request) -> Response:
        try:
            match = self.table.match(request.method, request.path)
            if match is None:
                return self.no_route(request)
            answer: Callable[..., Response] = getattr(self, match.route.endpoint)
            return answer(request, **match.params)
        except ServiceError as error:
            if error.status >= 500:
                logger.error("request failed", extra={"code": error.code, "reason": error.message})
            return self.error(error)
        except Exception:
            logger.exception("unhandled error")
            return self.error(ServiceError("the service failed to answer this request; see its logs"))

    def no_route(self, request: Request) -> Response:
        allowed = self.table.allowed(request.path)
        if allowed:
            error = self.error(
                MethodNotAllowedError(f"{request.method} {request.path} is not supported; use {', '.join(allowed)}")
            )
            error.headers["Allow"] = ", ".join(allowed)
            return error
        return self.error(
            NotFoundError(f"no route {request.method} {request.path}; the routes are {self.table.describe()}")
        )

    def error(self, error: ServiceError) -> Response:
        """The JSON error, counted: ClientErrors or ServerErrors in the request's metrics, and one
        `Errors` metric with the error code as its dimension (its own EMF line, so other metrics keep theirs)."""
        self.metrics.add_metric(
            name="ServerErrors" if error.status >= 500 else "ClientErrors", unit=MetricUnit.Count, value=1
        )
        with single_metric(name="Errors", unit=MetricUnit.Count, value=1, namespace=self.metrics.namespace) as by_code:
            by_code.add_dimension(name="code", value=error.code)
        return Response(error.status, json.dumps(error.to_body()))

    def runtime_for(self, name: str, version: str | None = None) -> ModelRuntime:
        runtime = self.service.require()
        manifest = runtime.manifest
        if name != manifest.name:
            raise NotFoundError(f"no model {name!r}; this endpoint serves {manifest.name!r}", code="unknown_model")
        if version is not None and version != manifest.version:
            raise NotFoundError(
                f"model {name} has no version {version!r}; it is at {manifest.version!r}", code="unknown_version"
            )
        return runtime

    def timed_run(self, runtime: ModelRuntime, inputs: dict[str, Any]) -> dict[str, Any]:
        start = time.perf_counter()
        outputs = runtime.run(inputs)
        self.metrics.add_metric(
            name="InferenceLatency", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - start) * 1000
        )
        return outputs

    # The routes' endpoints, as named in handlers.routes.ROUTES.

    def predict(self, request: Request) -> Response:
        runtime = self.service.require()
        manifest = runtime.manifest
        outputs = self.timed_run(runtime, runtime.decode(read_json(request)))

        def body(compact: bool) -> dict[str, Any]:
            answer: dict[str, Any] = {
                "outputs": {name: to_json(value, compact=compact) for name, value in outputs.items()},
                "model": manifest.name,
                "version": manifest.version,
            }
            if manifest.classifier_output is not None:
                answer["predictions"] = top_k(outputs[manifest.classifier_output], manifest.labels, TOP_K)
            return answer

        return fitting_response(body)

    def health(self, request: Request) -> Response:
        return json_response({"status": "ok", "model_ready": self.service.runtime is not None})

    def server_metadata(self, request: Request) -> Response:
        return json_response({"name": "lambdafit", "version": SERVER_VERSION, "extensions": []})

    def live(self, request: Request) -> Response:
        return json_response({"live": True})

    def ready(self, request: Request) -> Response:
        self.service.require()
        return json_response({"ready": True})

    def model_metadata(self, request: Request, name: str, version: str | None = None) -> Response:
        return json_response(v2.model_metadata(self.runtime_for(name, version).manifest))

    def model_ready(self, request: Request, name: str, version: str | None = None) -> Response:
        return json_response({"name": self.runtime_for(name, version).manifest.name, "ready": True})

    def infer(self, request: Request, name: str, version: str | None = None) -> Response:
        runtime = self.runtime_for(name, version)
        arrays, names, request_id = v2.decode_request(read_json(request), runtime.manifest)
        outputs = self.timed_run(runtime, arrays)
        return fitting_response(
            lambda compact: v2.encode_response(runtime.manifest, outputs, names, request_id, compact=compact)
        )

    def openapi(self, request: Request) -> Response:
        from handlers import openapi

        manifest = self.service.runtime.manifest if self.service.runtime else None
        return json_response(openapi.document(manifest, SERVER_VERSION))

    def docs(self, request: Request) -> Response:
        from handlers import openapi

        title = f"{self.service.runtime.manifest.name if self.service.runtime else 'lambdafit'} API"
        page = openapi.DOCS_PAGE.format(title=title, base=request.stage_prefix)
        return Response(200, page, "text/html; charset=utf-8")

    def docs_asset(self, request: Request, asset: str) -> Response:
        from handlers import openapi

        if asset not in openapi.SWAGGER_ASSETS or self.static_dir is None or not (self.static_dir / asset).is_file():
            raise NotFoundError(f"no documentation asset {asset!r}")
        kind = "text/css" if asset.endswith(".css") else "application/javascript"
        text = (self.static_dir / asset).read_text(encoding="utf-8")
        return Response(200, text, kind, {"Cache-Control": "max-age=86400"})


def json_response(body: dict[str, Any]) -> Response:
    """Serialize here, so an answer too large for Lambda becomes a clear 413."""
    text = json.dumps(body, separators=(",", ":"))
    if len(text) > MAX_BODY_BYTES:
        raise PayloadTooLargeError(
            f"the response would be {len(text)} bytes, over Lambda's {MAX_BODY_BYTES}: send fewer rows per request",
            code="response_too_large",
        )
    return Response(200, text)


def fitting_response(body: Callable[[bool], dict[str, Any]]) -> Response:
    """The answer with floats as Python prints them; when that is over 6 MB, with float32's own shortest
    digits (the same values, about 40% fewer bytes: a layout detector's raw heads for one page fit)."""
    try:
        return json_response(body(False))
    except PayloadTooLargeError:
        return json_response(body(True))


def read_json(request: Request) -> Any:
    """The request body as JSON, after the checks API Gateway itself would not make."""
    media = request.content_type
    if media and media != JSON and not media.endswith("+json"):
        raise UnsupportedMediaTypeError(f"send the body as application/json, not {media}")
    body = request.body()
    if not body:
        raise BadRequestError('the body is empty; send a JSON object with an "inputs" field', code="empty_body")
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLargeError(
            f"the body is {len(body)} bytes; Lambda accepts at most {MAX_BODY_BYTES}: send a smaller batch"
        )
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except RecursionError as exc:
        raise BadRequestError("the JSON is nested too deeply", code="malformed_json") from exc
    except ValueError as exc:
        raise BadRequestError(f"the body is not valid JSON: {exc}", code="malformed_json") from exc


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number; send finite numbers only")


def make_handler(settings: RuntimeSettings) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """Load the model now (at init, where Lambda gives the most CPU) and return the Lambda handler.

    With `settings.tracing`, powertools' Tracer (X-Ray) records each invocation, annotated with the
    model; it switches itself off outside Lambda and under `sam local`, and is imported only then."""
    start = time.perf_counter()
    logger.append_keys(service=settings.service)
    service = load_service(settings)
    load_ms = (time.perf_counter() - start) * 1000
    timings = {k: round(v, 2) for k, v in (service.runtime.timings if service.runtime else {}).items()}
    logger.info(
        "model loaded" if service.runtime else "model not loaded", extra={"load_ms": round(load_ms, 2)} | timings
    )
    metrics = Metrics(namespace=settings.namespace)
    endpoint = Endpoint(service, metrics, static_dir=settings.model_dir.parent / STATIC_DIR)
    first = [True]
    emit = not is_metrics_disabled()

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
        if first[0]:
            first[0] = False
            metrics.add_metric(name="ModelLoadTime", unit=MetricUnit.Milliseconds, value=load_ms)
        try:
            return dispatch(endpoint, event)
        finally:
            if not emit:  # powertools keeps (and re-flushes) disabled metrics; drop them per request
                metrics.clear_metrics()

    wrapped = metrics.log_metrics(handler, capture_cold_start_metric=True) if emit else handler
    if settings.tracing and service.runtime is not None:
        from aws_lambda_powertools.tracing import Tracer

        tracer = Tracer()
        label = f"{service.runtime.manifest.name}:{service.runtime.manifest.version}"
        untraced = wrapped

        def traced(event: dict[str, Any], context: Any) -> dict[str, Any]:
            tracer.put_annotation(key="model", value=label)
            return untraced(event, context)

        wrapped = tracer.capture_lambda_handler(traced, capture_response=False)
    return cast(
        "Callable[[dict[str, Any], Any], dict[str, Any]]", logger.inject_lambda_context(wrapped, log_event=False)
    )


def dispatch(endpoint: Endpoint, event: Any) -> dict[str, Any]:
    """An invocation event to the endpoint and back, in the event's own shape."""
    shape = shape_of(event)
    if shape is None:
        keys = sorted(event)[:8] if isinstance(event, dict) else type(event).__name__
        logger.warning("not an HTTP event", extra={"keys": keys})
        return RestEvent.respond(
            endpoint.error(
                BadRequestError(
                    "this function answers API Gateway (REST or HTTP API) and function URL events; "
                    f"the event it got is not one (keys: {keys})",
                    code="bad_event",
                )
            )
        )
    try:
        request = shape.parse(event)
    except ServiceError as error:
        return shape.respond(endpoint.error(error))
    except (KeyError, TypeError, AttributeError):
        return shape.respond(endpoint.error(BadRequestError(f"a malformed {shape.api.value} event", code="bad_event")))
    return shape.respond(endpoint.handle(request))
