"""Routing and HTTP shape: `Endpoint` answers the routes of `handlers.routes` for any event shape.

The dispatch is a dictionary lookup over the one route table (powertools' resolver costs 55-60 ms of
imports at cold start and most of the per-request overhead). Logs and traces are powertools'; the
per-request metrics line is written by handlers.metrics (powertools' Metrics for the rare ones).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO, cast

import numpy as np

from handlers import v2
from handlers.contract import DIMENSION_VERSION, METRIC_SERVER_ERRORS, STATIC_DIR, RuntimeSettings
from handlers.errors import (
    BadRequestError,
    MethodNotAllowedError,
    ModelNotReadyError,
    NotFoundError,
    PayloadTooLargeError,
    ServiceError,
    UnsupportedMediaTypeError,
)
from handlers.events import JSON, EventShape, Request, Response, RestEvent, json_post_body, shape_of
from handlers.logs import logger
from handlers.manifest import Task, bundle_task
from handlers.metrics import RequestMetrics
from handlers.routes import RouteTable
from handlers.runtime import Service, load_service
from handlers.tensors import Output, non_finite_warning, to_json, top_k

if TYPE_CHECKING:
    from collections.abc import Callable

    from handlers.runtime import ModelRuntime

MAX_BODY_BYTES = 6 * 1024 * 1024
"""Lambda's synchronous invoke payload limit, for requests and responses alike."""
ENVELOPE_BYTES = 256
"""Room for the response envelope around the body: status, headers, the body's quotes."""
RAW_MEDIA = frozenset({"image/png", "image/jpeg", "text/plain"})
"""Bodies /predict reads as the input itself, when the bundle's codec takes them (handlers.codecs)."""
SERVER_VERSION = "0.1.0"


class RoutedEndpoint:
    """Dispatch over one route table: the method the matched route names answers; no route is a 404
    naming the routes, or a 405 with Allow; a ServiceError answers with its own status, anything else
    with a logged 500. Errors are JSON (`error_body`) and counted (`error`)."""

    def __init__(self, metrics: RequestMetrics, table: RouteTable) -> None:
        self.metrics = metrics
        self.table = table

    def handle(self, request: Request, version: str = "$LATEST") -> Response:
        try:
            match = self.table.match(request.method, request.path)
            if match is None:
                return self.no_route(request)
            answer: Callable[..., Response] = getattr(self, match.route.endpoint)
            return answer(request, **match.params)
        except Exception as error:
            return self.failed(error, version)

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

    def failed(self, error: Exception, version: str) -> Response:
        """The answer to a request that raised: its own status for a ServiceError, else a logged 500."""
        if isinstance(error, ServiceError):
            if error.status >= 500:
                logger.error("request failed", extra={"code": error.code, "reason": error.message})
            return self.error(error, version)
        logger.exception("unhandled error")
        return self.error(ServiceError("the service failed to answer this request; see its logs"), version)

    def error(self, error: ServiceError, version: str = "$LATEST") -> Response:
        """The JSON error, counted: one `Errors` metric with the error code as its dimension (its own EMF
        line; the request's own line counts ClientErrors). A 5xx is also
        `ServerErrors` by `FunctionVersion`: what the canary's rollback alarm watches, since answering
        503 is no function error to AWS/Lambda."""
        if error.status >= 500:
            self.metrics.single(METRIC_SERVER_ERRORS, DIMENSION_VERSION, version)
        self.metrics.single("Errors", "code", error.code)
        return Response(error.status, json.dumps(self.error_body(error)))

    def error_body(self, error: ServiceError) -> dict[str, Any]:
        return error.to_body()


class Endpoint(RoutedEndpoint):
    """The model's HTTP API: one method per route endpoint, errors as JSON with a code."""

    def __init__(self, service: Service, metrics: RequestMetrics, static_dir: Path | None = None) -> None:
        super().__init__(metrics, RouteTable())
        self.service = service
        self.latency_ms: float | None = None
        """The model's run time in the current request, for its metrics line."""
        self.static_dir = static_dir

    def express(self, event: Any, context: Any) -> Response | None:
        """`POST /predict` with a JSON body, answered straight from the event as `handle` answers it:
        the request a model endpoint mostly gets, without building a Request or matching a route. None
        for any other event (and for a model that is not loaded), which `handle` answers."""
        runtime = self.service.runtime
        if runtime is None or (text := json_post_body(event, "/predict")) is None:
            return None
        try:
            if len(text) * 4 > MAX_BODY_BYTES:  # maybe too large: read_json measures it
                return None
            return self.prediction(runtime, runtime.decode(parse_json(text)))
        except Exception as error:
            return self.failed(error, getattr(context, "function_version", None) or "$LATEST")

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
        self.latency_ms = (time.perf_counter() - start) * 1000
        return outputs

    # The routes' endpoints, as named in handlers.routes.ROUTES.

    def predict(self, request: Request) -> Response:
        runtime = self.service.require()
        media = request.content_type
        if media in RAW_MEDIA:
            inputs = runtime.decode_raw(media, read_raw(request))
        else:
            inputs = runtime.decode(read_json(request, lambda: runtime.raw_media))
        return self.prediction(runtime, inputs)

    def prediction(self, runtime: ModelRuntime, inputs: dict[str, Any]) -> Response:
        """/predict's answer: the outputs, and for a classifier its predictions."""
        manifest = runtime.manifest
        outputs = self.timed_run(runtime, inputs)
        post = manifest.postprocessing
        shown = outputs if post.outputs is None else {n: outputs[n] for n in post.outputs}
        scores = manifest.classifier_output

        def body(compact: bool, checked: bool) -> dict[str, Any]:
            encoded, warnings = encode_outputs(shown, compact=compact, checked=checked)
            answer: dict[str, Any] = {"outputs": encoded, "model": manifest.name, "version": manifest.version}
            if scores is not None:
                # the answer's lists, unless checked (nulls for NaN) or compact (not the model's own digits)
                listed = encoded.get(scores) if not (compact or checked) else None
                answer["predictions"] = top_k(outputs[scores], manifest.labels, post.top_k, listed=listed)
            if warnings:
                answer["warnings"] = warnings
            return answer

        return fitting_response(body)

    def health(self, request: Request) -> Response:
        """200 only when the model can answer; 503 with the kind of failure otherwise (after a retry)."""
        try:
            self.service.require()
        except ModelNotReadyError:
            body = {"status": "unavailable", "model_ready": False, "reason": self.service.failure or "starting"}
            return Response(503, json.dumps(body))
        return json_response({"status": "ok", "model_ready": True})

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
            lambda compact, _: v2.encode_response(runtime.manifest, outputs, names, request_id, compact=compact)
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
    """Strict JSON (no NaN tokens), sized as Lambda sizes it: the body travels as an escaped string inside
    the response envelope, so each quote and backslash counts twice. Too large is a clear 413."""
    text = _ENCODER.encode(body)
    if (
        len(text) * 2 + ENVELOPE_BYTES > MAX_BODY_BYTES
        and (size := len(text) + text.count('"') + text.count("\\") + ENVELOPE_BYTES) > MAX_BODY_BYTES
    ):
        raise PayloadTooLargeError(
            f"the response would be {size} bytes as Lambda counts them, over its {MAX_BODY_BYTES}: "
            "send fewer rows per request",
            code="response_too_large",
        )
    return Response(200, text)


def fitting_response(body: Callable[[bool, bool], dict[str, Any]]) -> Response:
    """The answer `body(compact, checked)` builds, as strict JSON.

    First as it comes (`checked` False: outputs are not searched for NaN or infinity, since the strict
    encoder refuses them anyway, and then the answer is built again, checked, with each one as null and
    a warning). Floats as Python prints them; when that is over 6 MB, with float32's own shortest digits
    (the same values, about 40% fewer bytes: a layout detector's raw heads for one page fit)."""
    try:
        return json_response(body(False, False))
    except PayloadTooLargeError:
        return json_response(body(True, True))
    except ValueError:  # a value JSON cannot carry
        pass
    try:
        return json_response(body(False, True))
    except PayloadTooLargeError:
        return json_response(body(True, True))


def encode_outputs(
    outputs: dict[str, Output], *, compact: bool = False, checked: bool = True
) -> tuple[dict[str, Any], list[str]]:
    """The outputs as JSON, and a warning for each that held values which are not finite numbers.
    Unchecked, numeric arrays are listed as they are (see `fitting_response`)."""
    encoded: dict[str, Any] = {}
    warnings = []
    for name, value in outputs.items():
        if not checked and isinstance(value, np.ndarray) and value.dtype.kind in "fiub" and not compact:
            encoded[name] = value.tolist()
            continue
        encoded[name], bad = to_json(value, compact=compact)
        if bad:
            warnings.append(non_finite_warning(name, bad))
    return encoded, warnings


def read_raw(request: Request) -> bytes:
    """A body that is the input itself (an image, a text). Lambda counts the event's (base64) text."""
    size = len(request.raw_body or "")
    if size > MAX_BODY_BYTES:
        raise PayloadTooLargeError(
            f"the body is {size} bytes as the event carries it; Lambda accepts at most {MAX_BODY_BYTES}: "
            "send a smaller image or text"
        )
    body = request.body()
    if not body:
        raise BadRequestError(f"the body is empty; send the {request.content_type} itself", code="empty_body")
    return body


def read_json(request: Request, also: Callable[[], tuple[str, ...]] | None = None) -> Any:
    """The request body as JSON, after the checks API Gateway itself would not make. `also`: the other
    media types the route takes, for the 415's message."""
    media = request.content_type
    if media and media != JSON and not media.endswith("+json"):
        accepted = (JSON, *(also() if also else ()))
        raise UnsupportedMediaTypeError(f"send the body as {' or '.join(accepted)}, not {media}")
    body: str | bytes = request.raw_body or "" if not request.base64_encoded else request.body()
    if not body:
        raise BadRequestError('the body is empty; send a JSON object with an "inputs" field', code="empty_body")
    size = len(body) if isinstance(body, bytes) or len(body) * 4 <= MAX_BODY_BYTES else len(body.encode("utf-8"))
    if size > MAX_BODY_BYTES:
        raise PayloadTooLargeError(
            f"the body is {size} bytes; Lambda accepts at most {MAX_BODY_BYTES}: send a smaller batch"
        )
    try:
        text = body if isinstance(body, str) else body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequestError(f"the body is not UTF-8 text: {exc}", code="malformed_json") from exc
    return parse_json(text)


def parse_json(text: str) -> Any:
    """Strict JSON (no NaN or Infinity tokens), or what is wrong with it."""
    try:
        return _DECODER.decode(text)
    except RecursionError as exc:
        raise BadRequestError("the JSON is nested too deeply", code="malformed_json") from exc
    except ValueError as exc:
        raise BadRequestError(f"the body is not valid JSON: {exc}", code="malformed_json") from exc


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number; send finite numbers only")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
"""Built once: json.loads with an option builds a decoder per call."""
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
"""Strict JSON (NaN and infinity raise ValueError), compact, built once as `_DECODER` is."""


def make_handler(settings: RuntimeSettings) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """Load the model now (at init, where Lambda gives the most CPU) and return the Lambda handler.

    With `settings.tracing`, powertools' Tracer (X-Ray) records each invocation, annotated with the
    model; it switches itself off outside Lambda and under `sam local`, and is imported only then.
    A text-generation bundle gets handlers.generation_app's handler, which can also stream."""
    if bundle_task(settings.model_dir) is Task.TEXT_GENERATION:
        from handlers.generation_app import make_generation_handler

        return make_generation_handler(settings)
    service, load_ms = load(settings)
    return serve(service, settings, load_ms)


def load(settings: RuntimeSettings) -> tuple[Service, float]:
    """The model's service, loaded (or failed, to be retried), and what loading took in ms."""
    start = time.perf_counter()
    logger.append_keys(service=settings.service)
    service = load_service(settings)
    load_ms = (time.perf_counter() - start) * 1000
    timings = {k: round(v, 2) for k, v in (service.runtime.timings if service.runtime else {}).items()}
    if service.runtime:  # at DEBUG: the first request's metrics line carries ModelLoadTime (handlers.logs)
        logger.debug("model loaded", extra={"load_ms": round(load_ms, 2)} | timings)
    else:
        logger.info("model not loaded", extra={"load_ms": round(load_ms, 2)} | timings)
    return service, load_ms


def serve(
    service: Service, settings: RuntimeSettings, load_ms: float = 0.0, metrics_out: TextIO | None = None
) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """The Lambda handler around a loaded (or failed) service: dispatch, log keys, metrics, traces."""
    metrics = RequestMetrics(settings.namespace, settings.service, enabled=settings.metrics, out=metrics_out)
    endpoint = Endpoint(service, metrics, static_dir=settings.model_dir.parent / STATIC_DIR)
    context_keys = LambdaContextKeys()

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        context_keys.update(context)
        endpoint.latency_ms = None
        answer = endpoint.express(event, context)
        result = dispatch(endpoint, event, context) if answer is None else EventShape.respond(answer)
        metrics.emit(endpoint.latency_ms, 400 <= result["statusCode"] < 500, load_ms)
        return result

    if not (settings.tracing and service.runtime is not None):
        return handler
    from aws_lambda_powertools.tracing import Tracer

    tracer = Tracer()
    label = f"{service.runtime.manifest.name}:{service.runtime.manifest.version}"

    def traced(event: dict[str, Any], context: Any) -> dict[str, Any]:
        tracer.put_annotation(key="model", value=label)
        return handler(event, context)

    return cast(
        "Callable[[dict[str, Any], Any], dict[str, Any]]", tracer.capture_lambda_handler(traced, capture_response=False)
    )


class LambdaContextKeys:
    """The invocation's keys on every log line (request id, cold start), as powertools'
    inject_lambda_context adds them, for the price of a dictionary update per request."""

    def __init__(self) -> None:
        self.cold = True
        self.request_id: str | None = None

    def update(self, context: Any) -> None:
        request_id = getattr(context, "aws_request_id", None)
        if self.cold:
            self.cold = False
            logger.append_keys(
                cold_start=True,
                function_name=getattr(context, "function_name", None),
                function_memory_size=getattr(context, "memory_limit_in_mb", None),
                function_arn=getattr(context, "invoked_function_arn", None),
                function_request_id=request_id,
            )
        elif request_id != self.request_id:
            logger.append_keys(cold_start=False, function_request_id=request_id)
        self.request_id = request_id


class Answering(Protocol):
    """What dispatch needs of an endpoint (Endpoint, or a text-generation bundle's GenerationEndpoint)."""

    def handle(self, request: Request, version: str = ...) -> Response: ...

    def error(self, error: ServiceError, version: str = ...) -> Response: ...


def parse_event(endpoint: Answering, event: Any) -> tuple[type[EventShape], Request | Response]:
    """The event's shape and its request, or the error answer for an event that is not a valid one."""
    shape = shape_of(event)
    if shape is None:
        keys = sorted(event)[:8] if isinstance(event, dict) else type(event).__name__
        logger.warning("not an HTTP event", extra={"keys": keys})
        return RestEvent, endpoint.error(
            BadRequestError(
                "this function answers API Gateway (REST or HTTP API) and function URL events; "
                f"the event it got is not one (keys: {keys})",
                code="bad_event",
            )
        )
    try:
        return shape, shape.parse(event)
    except ServiceError as error:
        return shape, endpoint.error(error)
    except (KeyError, TypeError, AttributeError):
        return shape, endpoint.error(BadRequestError(f"a malformed {shape.api.value} event", code="bad_event"))


def dispatch(endpoint: Answering, event: Any, context: Any = None) -> dict[str, Any]:
    """An invocation event to the endpoint and back, in the event's own shape."""
    shape, request = parse_event(endpoint, event)
    if not isinstance(request, Request):
        return shape.respond(request)
    return shape.respond(endpoint.handle(request, getattr(context, "function_version", None) or "$LATEST"))
