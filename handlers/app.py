"""Routing and HTTP shape: the endpoint's routes on a powertools event-handler resolver."""

from __future__ import annotations

import functools
import json
import os
import re
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools.event_handler import (
    APIGatewayHttpResolver,
    APIGatewayRestResolver,
    LambdaFunctionUrlResolver,
    Response,
)
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.exceptions import NotFoundError as _RouteNotFound
from aws_lambda_powertools.metrics import Metrics, MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from handlers import v2
from handlers.errors import (
    BadRequestError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    ServiceError,
    UnsupportedMediaTypeError,
)
from handlers.logs import logger
from handlers.runtime import Service, load_service, top_k

if TYPE_CHECKING:
    from collections.abc import Callable

    from handlers.runtime import ModelRuntime

MAX_BODY_BYTES = 6 * 1024 * 1024
"""Lambda's synchronous invoke payload limit, for requests and responses alike."""
TOP_K = 5
SERVER_VERSION = "0.1.0"

metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "lambdafit"))


class ApiKind(StrEnum):
    """Which event shape the function receives: it decides the resolver."""

    REST = "rest"
    HTTP = "http"
    FUNCTION_URL = "url"


_RESOLVERS: dict[ApiKind, type[ApiGatewayResolver]] = {
    ApiKind.REST: APIGatewayRestResolver,
    ApiKind.HTTP: APIGatewayHttpResolver,
    ApiKind.FUNCTION_URL: LambdaFunctionUrlResolver,
}

_ROUTES: list[tuple[str, tuple[str, ...]]] = [
    ("/predict", ("POST",)),
    ("/health", ("GET",)),
    ("/openapi.json", ("GET",)),
    ("/docs", ("GET",)),
    ("/docs/<asset>", ("GET",)),
    ("/v2", ("GET",)),
    ("/v2/health/live", ("GET",)),
    ("/v2/health/ready", ("GET",)),
    ("/v2/models/<name>", ("GET",)),
    ("/v2/models/<name>/ready", ("GET",)),
    ("/v2/models/<name>/infer", ("POST",)),
    ("/v2/models/<name>/versions/<version>", ("GET",)),
    ("/v2/models/<name>/versions/<version>/ready", ("GET",)),
    ("/v2/models/<name>/versions/<version>/infer", ("POST",)),
]


@functools.cache
def _allowed_methods(path: str) -> tuple[str, ...] | None:
    """The methods a known route takes, for telling 405 from 404 (compiled on the first miss only)."""
    for route, methods in _ROUTES:
        if re.fullmatch(re.sub(r"<\w+>", "[^/]+", route) + "/?", path):
            return methods
    return None


def create_app(service: Service, api: ApiKind = ApiKind.REST, static_dir: Path | None = None) -> ApiGatewayResolver:
    app = _RESOLVERS[api]()

    def runtime_for(name: str, version: str | None = None) -> ModelRuntime:
        runtime = service.require()
        if name != runtime.manifest.name:
            raise NotFoundError(
                f"no model {name!r}; this endpoint serves {runtime.manifest.name!r}", code="unknown_model"
            )
        if version is not None and version != runtime.manifest.version:
            raise NotFoundError(
                f"model {name} has no version {version!r}; it is at {runtime.manifest.version!r}",
                code="unknown_version",
            )
        return runtime

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model_ready": service.runtime is not None}

    @app.post("/predict")
    def predict() -> Response[str]:
        runtime = service.require()
        manifest = runtime.manifest
        outputs = timed_run(runtime, runtime.decode(read_json(app)))
        body: dict[str, Any] = {
            "outputs": {name: value.tolist() for name, value in outputs.items()},
            "model": manifest.name,
            "version": manifest.version,
        }
        if manifest.task == "classification":
            body["predictions"] = top_k(outputs[manifest.outputs[0].name], manifest.labels, TOP_K)
        return json_response(body)

    @app.get("/v2")
    def server_metadata() -> dict[str, Any]:
        return {"name": "lambdafit", "version": SERVER_VERSION, "extensions": []}

    @app.get("/v2/health/live")
    def live() -> dict[str, Any]:
        return {"live": True}

    @app.get("/v2/health/ready")
    def ready() -> dict[str, Any]:
        service.require()
        return {"ready": True}

    @app.get("/v2/models/<name>")
    def model_metadata(name: str) -> dict[str, Any]:
        return v2.model_metadata(runtime_for(name).manifest)

    @app.get("/v2/models/<name>/versions/<version>")
    def model_version_metadata(name: str, version: str) -> dict[str, Any]:
        return v2.model_metadata(runtime_for(name, version).manifest)

    @app.get("/v2/models/<name>/ready")
    def model_ready(name: str) -> dict[str, Any]:
        return {"name": runtime_for(name).manifest.name, "ready": True}

    @app.get("/v2/models/<name>/versions/<version>/ready")
    def model_version_ready(name: str, version: str) -> dict[str, Any]:
        return {"name": runtime_for(name, version).manifest.name, "ready": True}

    def infer_with(runtime: ModelRuntime) -> Response[str]:
        arrays, names, request_id = v2.decode_request(read_json(app), runtime.manifest)
        outputs = timed_run(runtime, arrays)
        return json_response(v2.encode_response(runtime.manifest, outputs, names, request_id))

    @app.post("/v2/models/<name>/infer")
    def infer(name: str) -> Response[str]:
        return infer_with(runtime_for(name))

    @app.post("/v2/models/<name>/versions/<version>/infer")
    def infer_version(name: str, version: str) -> Response[str]:
        return infer_with(runtime_for(name, version))

    @app.get("/openapi.json")
    def openapi_document() -> dict[str, Any]:
        from handlers import openapi

        manifest = service.runtime.manifest if service.runtime else None
        return openapi.document(manifest, SERVER_VERSION)

    @app.get("/docs")
    def docs() -> Response[str]:
        from handlers import openapi

        title = f"{service.runtime.manifest.name if service.runtime else 'lambdafit'} API"
        page = openapi.DOCS_PAGE.format(title=title, base=_base_path(app))
        return Response(200, "text/html; charset=utf-8", page)

    @app.get("/docs/<asset>")
    def docs_asset(asset: str) -> Response[str]:
        from handlers import openapi

        if asset not in openapi.SWAGGER_ASSETS or static_dir is None or not (static_dir / asset).is_file():
            raise NotFoundError(f"no documentation asset {asset!r}")
        kind = "text/css" if asset.endswith(".css") else "application/javascript"
        return Response(
            200, kind, (static_dir / asset).read_text(encoding="utf-8"), headers={"Cache-Control": "max-age=86400"}
        )

    @app.exception_handler(ServiceError)
    def service_error(error: ServiceError) -> Response[str]:
        if error.status >= 500:
            logger.error("request failed", extra={"code": error.code, "reason": error.message})
        return error_response(error)

    @app.not_found
    def not_found(_: _RouteNotFound) -> Response[str]:
        path = app.current_event.path
        method = app.current_event.http_method.upper()
        allowed = _allowed_methods(path)
        if allowed and method not in allowed:
            return error_response(
                MethodNotAllowedError(f"{method} {path} is not supported; use {', '.join(allowed)}"),
                headers={"Allow": ", ".join(allowed)},
            )
        routes = ", ".join(f"{'|'.join(m)} {p}" for p, m in _ROUTES if "<asset>" not in p)
        return error_response(NotFoundError(f"no route {method} {path}; the routes are {routes}"))

    @app.exception_handler(Exception)
    def unexpected(error: Exception) -> Response[str]:
        logger.exception("unhandled error")
        return error_response(ServiceError("the service failed to answer this request; see its logs"))

    return app


def timed_run(runtime: ModelRuntime, inputs: dict[str, Any]) -> dict[str, Any]:
    start = time.perf_counter()
    outputs = runtime.run(inputs)
    metrics.add_metric(
        name="InferenceLatency", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - start) * 1000
    )
    return outputs


def json_response(body: dict[str, Any]) -> Response[str]:
    """Serialize here, not in the resolver, so an answer too large for Lambda becomes a clear 413."""
    text = json.dumps(body, separators=(",", ":"))
    if len(text) > MAX_BODY_BYTES:
        raise PayloadTooLargeError(
            f"the response would be {len(text)} bytes, over Lambda's {MAX_BODY_BYTES}: send fewer rows per request",
            code="response_too_large",
        )
    return Response(200, "application/json", text)


def _base_path(app: ApiGatewayResolver) -> str:
    """`/Prod` behind a REST API stage, empty elsewhere: the docs page must link to its own assets."""
    stage = (app.current_event.get("requestContext") or {}).get("stage", "")
    host = (app.current_event.get("headers") or {}).get("Host", "")
    if stage and stage != "$default" and "execute-api" in host:
        return f"/{stage}"
    return ""


def make_handler(
    model_dir: Path, api: ApiKind = ApiKind.REST, model_uri: str | None = None, tracing: bool = False
) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """Load the model now (at init, where Lambda gives the most CPU) and return the Lambda handler.

    With `tracing`, powertools' Tracer (X-Ray) records each invocation, annotated with the model; it
    switches itself off outside Lambda and under `sam local`, and is imported only then."""
    start = time.perf_counter()
    service = load_service(model_dir, model_uri)
    load_ms = (time.perf_counter() - start) * 1000
    timings = {k: round(v, 2) for k, v in (service.runtime.timings if service.runtime else {}).items()}
    logger.info(
        "model loaded" if service.runtime else "model not loaded", extra={"load_ms": round(load_ms, 2)} | timings
    )
    app = create_app(service, api, static_dir=model_dir.parent / "static")
    first = [True]
    emit = not is_metrics_disabled()

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
        if first[0]:
            first[0] = False
            metrics.add_metric(name="ModelLoadTime", unit=MetricUnit.Milliseconds, value=load_ms)
        try:
            return app.resolve(event, context)
        finally:
            if not emit:  # powertools keeps (and re-flushes) disabled metrics; drop them per request
                metrics.clear_metrics()

    wrapped = metrics.log_metrics(handler, capture_cold_start_metric=True) if emit else handler
    if tracing and service.runtime is not None:
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


def error_response(error: ServiceError, headers: dict[str, str] | None = None) -> Response[str]:
    """The JSON error, counted: ClientErrors or ServerErrors in the request's metrics, and one
    `Errors` metric with the error code as its dimension (its own EMF line, so other metrics keep theirs)."""
    metrics.add_metric(name="ServerErrors" if error.status >= 500 else "ClientErrors", unit=MetricUnit.Count, value=1)
    with single_metric(name="Errors", unit=MetricUnit.Count, value=1, namespace=metrics.namespace) as by_code:
        by_code.add_dimension(name="code", value=error.code)
    return Response(
        status_code=error.status,
        content_type="application/json",
        body=json.dumps(error.to_body()),
        headers=headers,
    )


def read_json(app: ApiGatewayResolver) -> Any:
    """The request body as JSON, after the checks API Gateway itself would not make."""
    event = app.current_event
    content_type = event.headers.get("content-type") or ""
    media = content_type.split(";", 1)[0].strip().lower()
    if media and media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaTypeError(f"send the body as application/json, not {media}")
    try:
        body = event.decoded_body
    except ValueError as exc:
        raise BadRequestError("the body is marked base64 but does not decode", code="malformed_body") from exc
    if not body:
        raise BadRequestError('the body is empty; send a JSON object with an "inputs" field', code="empty_body")
    size = len(body.encode("utf-8")) if isinstance(body, str) else len(body)
    if size > MAX_BODY_BYTES:
        raise PayloadTooLargeError(
            f"the body is {size} bytes; Lambda accepts at most {MAX_BODY_BYTES}: send a smaller batch"
        )
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except RecursionError as exc:
        raise BadRequestError("the JSON is nested too deeply", code="malformed_json") from exc
    except ValueError as exc:
        raise BadRequestError(f"the body is not valid JSON: {exc}", code="malformed_json") from exc


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number; send finite numbers only")
