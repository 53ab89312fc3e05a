"""`lambdafit serve` for a bundle whose function streams: its body goes out as the handler produces it,
in HTTP/1.1 chunks, as a Lambda function URL in RESPONSE_STREAM mode or a REST API with streaming
transfer delivers it. A client that goes away closes the stream, which stops generation."""

from __future__ import annotations

import logging
from http.server import BaseHTTPRequestHandler
from typing import Any

from handlers.contract import ApiKind
from handlers.events import SHAPES
from handlers.streaming import HttpStream

log = logging.getLogger("lambdafit.serve")


def can_stream(handler: Any, api: ApiKind, streaming: bool) -> bool:
    """The bundle streams (its template says so), the handler can, and so can the front door emulated."""
    return streaming and api is not ApiKind.HTTP and callable(getattr(handler, "stream", None))


def serve_streamed(
    request: BaseHTTPRequestHandler,
    handler: Any,
    context: Any,
    api: ApiKind,
    path: str,
    query: str,
    headers: dict[str, str],
    body: bytes,
) -> int:
    """Answer one request through `handler.stream`; returns the body bytes the client received."""
    event = SHAPES[api].build(request.command, path, body=body, headers=headers, query=query)
    stream: HttpStream = handler.stream(event, context)
    sent = 0
    try:
        request.send_response(stream.status)
        for key, value in stream.headers.items():
            if key.lower() not in ("content-length", "transfer-encoding"):
                request.send_header(key, value)
        for cookie in stream.cookies:
            request.send_header("Set-Cookie", cookie)
        request.send_header("Transfer-Encoding", "chunked")
        request.end_headers()
        request.wfile.flush()
        for piece in stream.chunks:
            if piece:
                request.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                request.wfile.flush()
                sent += len(piece)
        request.wfile.write(b"0\r\n\r\n")
        request.wfile.flush()
    except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError) as exc:
        log.info("client went away after %d bytes (%s): generation stopped", sent, type(exc).__name__)
        request.close_connection = True
    finally:
        stream.close()
    return sent
