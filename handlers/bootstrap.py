"""The bundle's own Lambda runtime loop, for response streaming (the managed Python runtime cannot stream).

    python3 -m handlers.bootstrap    # a streaming image's ENTRYPOINT; a streaming zip's exec wrapper runs it

It speaks the Lambda Runtime API over HTTP (standard library only): `GET .../invocation/next`, then the
answer as `POST .../invocation/{id}/response` in streaming mode (`Lambda-Runtime-Function-Response-Mode:
streaming`, chunked transfer, content type `application/vnd.awslambda.http-integration-response`): the
JSON prelude with status and headers, 8 NUL bytes, then the body as the handler produces it. A failure
before the first byte is posted to `.../error`; after it, it travels in the trailers
`Lambda-Runtime-Function-Error-Type` and `-Body` (base64 JSON). If the Runtime API stops reading (the
caller went away), the stream is closed, which stops generation and frees its KV cache.

Under `sam local` (AWS_SAM_LOCAL), whose Runtime Interface Emulator has no streaming endpoint, answers
are posted whole, as the managed runtime would.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from handlers.streaming import PRELUDE_CONTENT_TYPE, HttpStream

API_VERSION = "2018-06-01"
ERROR_TYPE = "Lambda-Runtime-Function-Error-Type"
ERROR_BODY = "Lambda-Runtime-Function-Error-Body"
ENV_RUNTIME_API = "AWS_LAMBDA_RUNTIME_API"
ENV_SAM_LOCAL = "AWS_SAM_LOCAL"
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass
class InvocationContext:
    """Lambda's context object, as the managed runtime builds it from the invocation's headers."""

    aws_request_id: str
    invoked_function_arn: str
    deadline_ms: int
    function_name: str
    function_version: str
    memory_limit_in_mb: int
    log_group_name: str
    log_stream_name: str

    @classmethod
    def from_headers(cls, headers: http.client.HTTPMessage, environ: dict[str, str]) -> InvocationContext:
        return cls(
            aws_request_id=headers.get("Lambda-Runtime-Aws-Request-Id", ""),
            invoked_function_arn=headers.get("Lambda-Runtime-Invoked-Function-Arn", ""),
            deadline_ms=int(headers.get("Lambda-Runtime-Deadline-Ms") or 0),
            function_name=environ.get("AWS_LAMBDA_FUNCTION_NAME", ""),
            function_version=environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            memory_limit_in_mb=int(environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") or 0),
            log_group_name=environ.get("AWS_LAMBDA_LOG_GROUP_NAME", ""),
            log_stream_name=environ.get("AWS_LAMBDA_LOG_STREAM_NAME", ""),
        )

    def get_remaining_time_in_millis(self) -> int:
        if not self.deadline_ms:
            return 900_000
        return max(0, self.deadline_ms - int(time.time() * 1000))


@dataclass(frozen=True)
class Delivery:
    """How one answer went: bytes of body sent, and whether the Runtime API took all of it."""

    body_bytes: int
    complete: bool
    error: str | None = None


class RuntimeApi:
    """A client of the Runtime API at `address` (host:port), on one kept-alive connection."""

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self.host, self.port = host or address, int(port or 80)
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=None)
            self._conn.connect()
            assert self._conn.sock is not None
            self._conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self._conn

    def _reset(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    close = _reset

    def _post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        conn = self._connection()
        try:
            conn.request("POST", f"/{API_VERSION}{path}", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            return response.status
        except OSError:
            self._reset()
            raise

    def next(self) -> tuple[http.client.HTTPMessage, bytes]:
        conn = self._connection()
        try:
            conn.request("GET", f"/{API_VERSION}/runtime/invocation/next")
            response = conn.getresponse()
            return response.headers, response.read()
        except OSError:
            self._reset()
            raise

    def respond(self, request_id: str, result: Any) -> None:
        """A buffered answer, as the managed runtime posts it."""
        body = json.dumps(result, separators=(",", ":")).encode("utf-8")
        self._post(f"/runtime/invocation/{request_id}/response", body, {"Content-Type": "application/json"})

    def error(self, request_id: str | None, error: BaseException) -> None:
        """A failure before any byte of the answer left (or at init, without a request id)."""
        body, kind = _error_document(error)
        path = f"/runtime/invocation/{request_id}/error" if request_id else "/runtime/init/error"
        self._post(path, body, {"Content-Type": "application/json", ERROR_TYPE: kind})

    def stream(self, request_id: str, stream: HttpStream) -> Delivery:
        """Post `stream` as it is produced. A producer failure becomes the error trailers; a Runtime API
        that stops reading ends the stream early, closing the producer."""
        conn = self._connection()
        sent = 0
        try:
            conn.putrequest(
                "POST", f"/{API_VERSION}/runtime/invocation/{request_id}/response", skip_accept_encoding=True
            )
            conn.putheader("Lambda-Runtime-Function-Response-Mode", "streaming")
            conn.putheader("Transfer-Encoding", "chunked")
            conn.putheader("Content-Type", PRELUDE_CONTENT_TYPE)
            conn.putheader("Trailer", f"{ERROR_TYPE}, {ERROR_BODY}")
            conn.endheaders()
            conn.send(_chunk(stream.prelude()))
        except OSError as exc:
            stream.close()
            self._reset()
            return Delivery(0, False, f"the Runtime API refused the stream: {exc}")
        failure: BaseException | None = None
        try:
            while True:
                try:
                    piece = next(stream.chunks)
                except StopIteration:
                    break
                except Exception as exc:  # the producer failed mid-stream: report it in the trailers
                    failure = exc
                    break
                if piece:
                    conn.send(_chunk(piece))
                    sent += len(piece)
            conn.send(_end(failure))
            response = conn.getresponse()
            response.read()
        except OSError as exc:
            self._reset()
            return Delivery(sent, False, f"the Runtime API stopped reading after {sent} bytes: {exc}")
        finally:
            stream.close()
        return Delivery(sent, failure is None, None if failure is None else repr(failure))


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _end(failure: BaseException | None) -> bytes:
    if failure is None:
        return b"0\r\n\r\n"
    body, kind = _error_document(failure)
    trailers = f"{ERROR_TYPE}: {kind}\r\n{ERROR_BODY}: {base64.b64encode(body).decode('ascii')}\r\n"
    return b"0\r\n" + trailers.encode("ascii") + b"\r\n"


def _error_document(error: BaseException) -> tuple[bytes, str]:
    kind = f"Runtime.{type(error).__name__}"
    document = {
        "errorMessage": str(error),
        "errorType": type(error).__name__,
        "stackTrace": traceback.format_exception(error)[-5:],
    }
    return json.dumps(document).encode("utf-8"), kind


def invoke_once(api: RuntimeApi, handler: Handler, environ: dict[str, str], *, buffered: bool = False) -> Delivery:
    """Take one invocation and answer it."""
    headers, payload = api.next()
    context = InvocationContext.from_headers(headers, environ)
    if trace := headers.get("Lambda-Runtime-Trace-Id"):
        os.environ["_X_AMZN_TRACE_ID"] = trace
    try:
        event = json.loads(payload)
        if buffered:
            result = handler(event, context)
        else:
            streamer = getattr(handler, "stream", None)
            stream = streamer(event, context) if streamer else HttpStream.from_result(handler(event, context))
    except Exception as exc:
        api.error(context.aws_request_id, exc)
        return Delivery(0, False, repr(exc))
    if buffered:
        api.respond(context.aws_request_id, result)
        return Delivery(len(str(result.get("body") or "")), True)
    return api.stream(context.aws_request_id, stream)


def serve(api: RuntimeApi, handler: Handler, environ: dict[str, str], *, invocations: int | None = None) -> None:
    """The loop: forever in Lambda; `invocations` of them in tests."""
    from handlers.contract import flag

    buffered = flag(environ.get(ENV_SAM_LOCAL), ENV_SAM_LOCAL)
    count = 0
    try:
        while invocations is None or count < invocations:
            delivery = invoke_once(api, handler, environ, buffered=buffered)
            if not delivery.complete and delivery.error:
                from handlers.logs import logger

                logger.warning(
                    "answer not delivered whole", extra={"reason": delivery.error, "bytes": delivery.body_bytes}
                )
            count += 1
    finally:
        api.close()


def main() -> None:
    environ = dict(os.environ)
    api = RuntimeApi(environ[ENV_RUNTIME_API])
    try:
        from handlers.app import make_handler
        from handlers.contract import RuntimeSettings

        handler = make_handler(RuntimeSettings.from_env(environ))
    except Exception as exc:
        api.error(None, exc)
        raise SystemExit(1) from exc
    serve(api, handler, environ)


if __name__ == "__main__":
    main()
