"""One class per event shape that invokes the function: API Gateway REST (payload 1.0), HTTP API and
function URLs (payload 2.0). Each parses its event into a `Request`, turns a `Response` into what
that front door expects back, and builds events of its shape (for `lambdafit serve`, the bundle's
sample events and the tests), so the three shapes are written down once. Building imports what only
building needs (uuid, urllib), so the function's cold start does not pay for it.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any, ClassVar

from handlers.contract import ApiKind
from handlers.errors import BadRequestError

JSON = "application/json"


@dataclass(slots=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    """Lower-cased names; repeated headers joined with commas, as HTTP allows."""
    query: dict[str, str]
    raw_body: str | None
    base64_encoded: bool
    stage_prefix: str = ""
    """`/Prod` when the client reached a REST API through its stage URL, for links back to the API."""

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    def body(self) -> bytes:
        if self.raw_body is None:
            return b""
        if not self.base64_encoded:
            return self.raw_body.encode("utf-8")
        try:
            return base64.b64decode(self.raw_body, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequestError("the body is marked base64 but does not decode", code="malformed_body") from None


@dataclass(slots=True)
class Response:
    status: int
    body: str
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)


class EventShape:
    """How one front door talks to the function."""

    api: ClassVar[ApiKind]
    domain: ClassVar[str]

    @classmethod
    def parse(cls, event: dict[str, Any]) -> Request:
        raise NotImplementedError

    @staticmethod
    def respond(response: Response) -> dict[str, Any]:
        return {
            "statusCode": response.status,
            "headers": {"Content-Type": response.content_type} | response.headers,
            "body": response.body,
            "isBase64Encoded": False,
        }

    @classmethod
    def build(
        cls,
        method: str,
        path: str,
        *,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        query: str = "",
    ) -> dict[str, Any]:
        raise NotImplementedError


class RestEvent(EventShape):
    """API Gateway REST API proxy integration (`ANY /{proxy+}`), payload format 1.0."""

    api = ApiKind.REST
    domain = "lambdafit.execute-api.us-east-1.amazonaws.com"
    stage = "Prod"

    @classmethod
    def parse(cls, event: dict[str, Any]) -> Request:
        headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
        for key, values in (event.get("multiValueHeaders") or {}).items():
            if isinstance(values, list) and len(values) > 1:
                headers[str(key).lower()] = ",".join(str(v) for v in values)
        context = event.get("requestContext") or {}
        stage = str(context.get("stage") or "")
        prefix = f"/{stage}" if stage and stage != "$default" and "execute-api" in headers.get("host", "") else ""
        return Request(
            method=_word(event["httpMethod"]),
            path=_path(event["path"]),
            headers=headers,
            query={str(k): str(v) for k, v in (event.get("queryStringParameters") or {}).items()},
            raw_body=_text(event.get("body")),
            base64_encoded=bool(event.get("isBase64Encoded")),
            stage_prefix=prefix,
        )

    @classmethod
    def build(
        cls,
        method: str,
        path: str,
        *,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        query: str = "",
    ) -> dict[str, Any]:
        import time
        import uuid
        from urllib.parse import parse_qs

        headers = dict(headers or {})
        text, encoded = _body_text(body)
        multi_query = parse_qs(query, keep_blank_values=True) if query else None
        now = time.time()
        return {
            "resource": "/{proxy+}",
            "path": path,
            "httpMethod": method.upper(),
            "headers": headers or None,
            "multiValueHeaders": {k: [v] for k, v in headers.items()} or None,
            "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} if multi_query else None,
            "multiValueQueryStringParameters": multi_query,
            "pathParameters": {"proxy": path.lstrip("/")},
            "stageVariables": None,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "lambdafit",
                "domainName": headers.get("Host", "127.0.0.1"),
                "httpMethod": method.upper(),
                "identity": {"sourceIp": "127.0.0.1", "userAgent": headers.get("User-Agent", "")},
                "path": f"/{cls.stage}{path}",
                "protocol": "HTTP/1.1",
                "requestId": str(uuid.uuid4()),
                "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
                "requestTimeEpoch": int(now * 1000),
                "resourceId": "proxy",
                "resourcePath": "/{proxy+}",
                "stage": cls.stage,
            },
            "body": text,
            "isBase64Encoded": encoded,
        }


class HttpApiEvent(EventShape):
    """API Gateway HTTP API (`$default` route), payload format 2.0."""

    api = ApiKind.HTTP
    domain = "lambdafit.execute-api.us-east-1.amazonaws.com"
    account = "123456789012"

    @classmethod
    def parse(cls, event: dict[str, Any]) -> Request:
        http = event["requestContext"]["http"]
        headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
        if event.get("cookies"):
            headers["cookie"] = "; ".join(str(c) for c in event["cookies"])
        return Request(
            method=_word(http["method"]),
            path=_path(event.get("rawPath") or http.get("path")),
            headers=headers,
            query={str(k): str(v) for k, v in (event.get("queryStringParameters") or {}).items()},
            raw_body=_text(event.get("body")),
            base64_encoded=bool(event.get("isBase64Encoded")),
        )

    @classmethod
    def build(
        cls,
        method: str,
        path: str,
        *,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        query: str = "",
    ) -> dict[str, Any]:
        import time
        import uuid
        from urllib.parse import parse_qs

        text, encoded = _body_text(body)
        lowered: dict[str, str] = {}
        for key, value in (headers or {}).items():
            name = key.lower()
            lowered[name] = f"{lowered[name]},{value}" if name in lowered else value
        multi_query = parse_qs(query, keep_blank_values=True) if query else {}
        now = time.time()
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": query,
            "headers": lowered,
            "requestContext": {
                "accountId": cls.account,
                "apiId": "lambdafit",
                "domainName": cls.domain,
                "domainPrefix": "lambdafit",
                "http": {
                    "method": method.upper(),
                    "path": path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": "127.0.0.1",
                    "userAgent": lowered.get("user-agent", ""),
                },
                "requestId": str(uuid.uuid4()),
                "routeKey": "$default",
                "stage": "$default",
                "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
                "timeEpoch": int(now * 1000),
            },
            "isBase64Encoded": encoded,
        }
        if multi_query:
            event["queryStringParameters"] = {k: ",".join(v) for k, v in multi_query.items()}
        if text is not None:
            event["body"] = text
        return event


class FunctionUrlEvent(HttpApiEvent):
    """A Lambda function URL: payload format 2.0 with the function URL's own request context."""

    api = ApiKind.FUNCTION_URL
    domain = "lambdafit.lambda-url.us-east-1.on.aws"
    account = "anonymous"


SHAPES: dict[ApiKind, type[EventShape]] = {shape.api: shape for shape in (RestEvent, HttpApiEvent, FunctionUrlEvent)}


def shape_of(event: Any) -> type[EventShape] | None:
    """The shape an incoming event has, or None when it is not an HTTP event at all."""
    if not isinstance(event, dict):
        return None
    if isinstance(event.get("httpMethod"), str):
        return RestEvent
    context = event.get("requestContext")
    if event.get("version") == "2.0" and isinstance(context, dict) and isinstance(context.get("http"), dict):
        return FunctionUrlEvent if ".lambda-url." in str(context.get("domainName", "")) else HttpApiEvent
    return None


def json_post_body(event: Any, path: str) -> str | None:
    """The body of an event that plainly posts JSON text to `path` (REST, HTTP API or function URL),
    read without building a Request: the hot request's short way in. None for anything else, such as
    another casing of Content-Type, a media type with parameters or repeated values, or a base64 body:
    those take the full parse, which decides."""
    if type(event) is not dict:
        return None
    method = event.get("httpMethod")
    if method is not None:
        if method != "POST" or event.get("path") not in (path, path + "/"):
            return None
        repeated = event.get("multiValueHeaders")
        if repeated and (
            type(repeated) is not dict
            or len(repeated.get("Content-Type") or ()) > 1
            or len(repeated.get("content-type") or ()) > 1
        ):
            return None
    else:
        context = event.get("requestContext")
        http = context.get("http") if type(context) is dict and event.get("version") == "2.0" else None
        if type(http) is not dict or http.get("method") != "POST":
            return None
        if (event.get("rawPath") or http.get("path")) not in (path, path + "/"):
            return None
    headers = event.get("headers")
    if type(headers) is not dict or event.get("isBase64Encoded"):
        return None
    media = headers.get("content-type")
    if media is None:
        media = headers.get("Content-Type")
    elif "Content-Type" in headers:
        return None
    body = event.get("body")
    if media != JSON or type(body) is not str or not body:
        return None
    return body


def _word(method: Any) -> str:
    if not isinstance(method, str) or not method.isalpha():
        raise TypeError(f"an HTTP method is a word, not {method!r}")
    return method.upper()


def _path(path: Any) -> str:
    if not isinstance(path, str) or not path.startswith("/"):
        raise TypeError(f"a request path starts with '/', not {path!r}")
    return path


def _text(body: Any) -> str | None:
    if body is None or isinstance(body, str):
        return body
    raise BadRequestError(f"the event's body is a JSON {type(body).__name__}, not a string", code="bad_event")


def _body_text(body: bytes | str | None) -> tuple[str | None, bool]:
    """API Gateway passes UTF-8 text as is and anything else base64-encoded."""
    if body is None or body in (b"", ""):
        return None, False
    if isinstance(body, str):
        return body, False
    try:
        return body.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), True
