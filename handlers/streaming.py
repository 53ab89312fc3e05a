"""Streamed responses and their wire formats, standard library only.

- Server-sent events: `data: {json}\\n\\n` per chunk, as OpenAI streams.
- Lambda's HTTP response stream (function URLs with InvokeMode RESPONSE_STREAM, API Gateway REST with
  responseTransferMode STREAM): a JSON prelude with the status and headers, 8 NUL bytes, then the body
  as it is produced, under the content type `application/vnd.awslambda.http-integration-response`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from handlers.events import Response

PRELUDE_CONTENT_TYPE = "application/vnd.awslambda.http-integration-response"
DELIMITER = b"\x00" * 8
SSE_HEADERS = (("Cache-Control", "no-cache"),)


def sse(data: Any) -> str:
    return f"data: {json.dumps(data, separators=(',', ':'), ensure_ascii=False)}\n\n"


@dataclass(slots=True, kw_only=True)
class StreamingResponse(Response):
    """A response whose body is produced while it is sent: `chunks` yields its text in order."""

    chunks: Iterator[str] = field(default_factory=lambda: iter(()))

    def buffered(self) -> Response:
        """The whole body at once, for front doors that cannot stream (HTTP APIs, the managed runtime)."""
        try:
            body = "".join(self.chunks)
        finally:
            close(self.chunks)
        return Response(self.status, body, self.content_type, self.headers)


def close(chunks: Iterator[Any]) -> None:
    closer = getattr(chunks, "close", None)
    if closer is not None:
        closer()


def prelude(status: int, headers: dict[str, str], cookies: list[str] | None = None) -> bytes:
    """What precedes the body of an HTTP response stream: its metadata as JSON, then 8 NUL bytes."""
    meta: dict[str, Any] = {"statusCode": status, "headers": headers}
    if cookies:
        meta["cookies"] = cookies
    return json.dumps(meta, separators=(",", ":")).encode("utf-8") + DELIMITER


@dataclass
class HttpStream:
    """An HTTP response as a function streams it: status and headers first, then body bytes as produced.
    A consumer that stops early (the client went away) must call `close()`: it stops the producer."""

    status: int
    headers: dict[str, str]
    chunks: Iterator[bytes]
    cookies: list[str] = field(default_factory=list)

    @classmethod
    def from_result(cls, result: dict[str, Any]) -> HttpStream:
        """A buffered Lambda proxy result (statusCode, headers, body) as a one-chunk stream."""
        headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
        for key, values in (result.get("multiValueHeaders") or {}).items():
            headers.setdefault(str(key), ",".join(str(v) for v in values))
        raw = result.get("body") or ""
        body = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode("utf-8")
        return cls(int(result.get("statusCode", 200)), headers, iter((body,)), list(result.get("cookies") or []))

    @classmethod
    def from_response(cls, response: Response) -> HttpStream:
        headers = {"Content-Type": response.content_type} | response.headers
        if isinstance(response, StreamingResponse):
            return cls(response.status, headers, _Encoded(response.chunks))
        return cls(response.status, headers, iter((response.body.encode("utf-8"),)))

    def prelude(self) -> bytes:
        return prelude(self.status, self.headers, self.cookies)

    def close(self) -> None:
        close(self.chunks)


class _Encoded:
    """Text chunks as UTF-8 bytes; closing it closes them, started or not."""

    def __init__(self, chunks: Iterator[str]) -> None:
        self.chunks = chunks

    def __iter__(self) -> _Encoded:
        return self

    def __next__(self) -> bytes:
        return next(self.chunks).encode("utf-8")

    def close(self) -> None:
        close(self.chunks)


class Watched:
    """Chunks passed through unchanged; `on_end` runs once, when they run out or are closed early."""

    def __init__(self, chunks: Iterator[bytes], on_end: Any) -> None:
        self.chunks = chunks
        self.on_end = on_end

    def __iter__(self) -> Watched:
        return self

    def __next__(self) -> bytes:
        try:
            return next(self.chunks)
        except BaseException:
            self._end()
            raise

    def close(self) -> None:
        try:
            close(self.chunks)
        finally:
            self._end()

    def _end(self) -> None:
        on_end, self.on_end = self.on_end, None
        if on_end is not None:
            on_end()
