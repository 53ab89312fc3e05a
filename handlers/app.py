"""Routing and HTTP shape: the endpoint's routes on a powertools event-handler resolver."""

from __future__ import annotations

import json
import re
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import (
    APIGatewayHttpResolver,
    APIGatewayRestResolver,
    LambdaFunctionUrlResolver,
    Response,
)
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.exceptions import NotFoundError as _RouteNotFound

from handlers.errors import (
    BadRequestError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    ServiceError,
    UnsupportedMediaTypeError,
)
from handlers.logs import logger
from handlers.runtime import Service, decode_inputs, load_service, top_k

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


MAX_BODY_BYTES = 6 * 1024 * 1024
"""Lambda's synchronous invoke payload limit, for requests and responses alike."""
TOP_K = 5


class ApiKind(StrEnum):
    """Which event shape the function receives: it decides the resolver."""

    REST = "rest"
    HTTP = "http"
    FUNCTION_URL = "url"


_RESOLVERS = {
    ApiKind.REST: APIGatewayRestResolver,
    ApiKind.HTTP: APIGatewayHttpResolver,
    ApiKind.FUNCTION_URL: LambdaFunctionUrlResolver,
}

Resolver = ApiGatewayResolver


_ROUTES: dict[str, tuple[str, ...]] = {
    "/predict": ("POST",),
    "/health": ("GET",),
}


def create_app(service: Service, api: ApiKind = ApiKind.REST) -> Resolver:
    app: Resolver = _RESOLVERS[api]()

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model_ready": service.runtime is not None}

    @app.post("/predict")
    def predict() -> dict[str, Any]:
        runtime = service.require()
        payload = read_json(app)
        manifest = runtime.manifest
        outputs = runtime.run(decode_inputs(payload, manifest.inputs))
        body: dict[str, Any] = {
            "outputs": {name: value.tolist() for name, value in outputs.items()},
            "model": manifest.name,
            "version": manifest.version,
        }
        if manifest.task == "classification":
            first = outputs[manifest.outputs[0].name]
            body["predictions"] = top_k(first, manifest.labels, TOP_K)
        return body

    @app.exception_handler(ServiceError)
    def service_error(error: ServiceError) -> Response[Any]:
        if error.status >= 500:
            logger.error("request failed", extra={"code": error.code, "reason": error.message})
        return error_response(error)

    @app.not_found
    def not_found(_: _RouteNotFound) -> Response[Any]:
        path = app.current_event.path
        method = app.current_event.http_method.upper()
        allowed = _ROUTES.get(_normalize(path))
        if allowed and method not in allowed:
            return error_response(
                MethodNotAllowedError(f"{method} {path} is not supported; use {', '.join(allowed)}"),
                headers={"Allow": ", ".join(allowed)},
            )
        routes = ", ".join(f"{'|'.join(m)} {p}" for p, m in _ROUTES.items())
        return error_response(NotFoundError(f"no route {method} {path}; the routes are {routes}"))

    @app.exception_handler(Exception)
    def unexpected(error: Exception) -> Response[Any]:
        logger.exception("unhandled error")
        return error_response(ServiceError("the service failed to answer this request; see its logs"))

    return app


def make_handler(model_dir: Path, api: ApiKind = ApiKind.REST) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """Load the model now (at init, where Lambda gives the most CPU) and return the Lambda handler."""
    app = create_app(load_service(model_dir), api)

    @logger.inject_lambda_context(log_event=False)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return app.resolve(event, context)

    return handler


def _normalize(path: str) -> str:
    return re.sub(r"/+$", "", path) or "/"


def error_response(error: ServiceError, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        status_code=error.status,
        content_type="application/json",
        body=json.dumps(error.to_body()),
        headers=headers,
    )


def read_json(app: Resolver) -> Any:
    """The request body as JSON, after the checks API Gateway itself would not make."""
    event = app.current_event
    content_type = event.get_header_value("content-type", default_value="", case_sensitive=False) or ""
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
