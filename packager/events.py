"""API Gateway and function URL events, shaped like those AWS and `sam local` send: REST (v1) proxy
events and payload-format 2.0 events (HTTP API, function URLs)."""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any
from urllib.parse import parse_qs


def rest_event(
    method: str,
    path: str,
    *,
    body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
    query: str = "",
    stage: str = "Prod",
) -> dict[str, Any]:
    """A REST API proxy integration event for `ANY /{proxy+}`; binary bodies travel base64-encoded."""
    headers = dict(headers or {})
    text, encoded = _body_text(body)
    multi_query = parse_qs(query, keep_blank_values=True) if query else None
    now = time.time()
    request_id = str(uuid.uuid4())
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
            "path": f"/{stage}{path}",
            "protocol": "HTTP/1.1",
            "requestId": request_id,
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000),
            "resourceId": "proxy",
            "resourcePath": "/{proxy+}",
            "stage": stage,
        },
        "body": text,
        "isBase64Encoded": encoded,
    }


def http_event(
    method: str,
    path: str,
    *,
    body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
    query: str = "",
    function_url: bool = False,
) -> dict[str, Any]:
    """A payload-format 2.0 event: API Gateway HTTP API (`$default` route) or a Lambda function URL."""
    text, encoded = _body_text(body)
    lowered: dict[str, str] = {}
    for key, value in (headers or {}).items():
        name = key.lower()
        lowered[name] = f"{lowered[name]},{value}" if name in lowered else value
    multi_query = parse_qs(query, keep_blank_values=True) if query else {}
    now = time.time()
    domain = (
        "lambdafit.lambda-url.us-east-1.on.aws" if function_url else "lambdafit.execute-api.us-east-1.amazonaws.com"
    )
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": lowered,
        "requestContext": {
            "accountId": "anonymous" if function_url else "123456789012",
            "apiId": "lambdafit",
            "domainName": domain,
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
