"""API Gateway REST (v1) proxy events, shaped like those API Gateway and `sam local` send."""

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
    encoded = False
    text: str | None
    if body is None or body == b"" or body == "":
        text = None
    elif isinstance(body, bytes):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text, encoded = base64.b64encode(body).decode("ascii"), True
    else:
        text = body
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
