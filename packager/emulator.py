"""`lambdafit serve`: API Gateway on a laptop, no Docker. Each HTTP request becomes a real REST proxy
event for the bundle's handler, called in-process, and its result becomes the HTTP response."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NoReturn

from handlers.app import make_handler
from handlers.contract import ENV_VARS, FUNCTION_DIR, MODEL_DIR, ApiKind, ContractError, RuntimeSettings
from handlers.events import SHAPES
from packager.errors import LambdafitError
from packager.template import AppModel

log = logging.getLogger("lambdafit.serve")
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
MAX_REQUEST_BYTES = 10 * 1024 * 1024
"""API Gateway's own limit; the handler enforces Lambda's 6 MB itself, as it would in AWS."""
LISTEN_BACKLOG = 1024
"""Connections the kernel queues before they are accepted: bursts of new clients wait instead of
having their SYNs dropped (socketserver's default is 5)."""
SOCKET_TIMEOUT_S = 30
"""A client that sends nothing for this long (a stalled body, an idle keep-alive) is disconnected."""
LINGER_S = 1.0
MAX_CHUNK_LINE = 4096
MAX_TRAILERS = 64


@dataclass
class LambdaContext:
    """The parts of Lambda's context object that handlers and powertools read."""

    function_name: str
    memory_limit_in_mb: int = 1024
    timeout_s: float = 29.0
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_s

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class LoadedBundle:
    app: AppModel
    settings: RuntimeSettings
    """The function's settings as the template sets them, with its model folder in the bundle."""


def open_bundle(bundle: Path, environ: Mapping[str, str] = os.environ) -> LoadedBundle:
    """The bundle's application and the settings its function runs with. A setting in this process's
    environment wins over the bundle's (MODEL_URI to point a local run at another copy of the model,
    LAMBDAFIT_CACHE_DIR to keep downloads elsewhere); the model folder is the bundle's."""
    from packager.bundle import read_app

    app = read_app(bundle)
    overrides = {name: environ[name] for name in ENV_VARS if name in environ}
    try:
        settings = RuntimeSettings.from_env(app.settings.to_env() | overrides)
    except ContractError as exc:
        raise LambdafitError(str(exc)) from None
    return LoadedBundle(app, settings.with_model_dir(bundle / FUNCTION_DIR / MODEL_DIR))


def invoke(
    handler: Handler,
    name: str,
    method: str,
    path: str,
    query: str,
    headers: dict[str, str],
    body: bytes,
    api: ApiKind = ApiKind.REST,
) -> tuple[int, list[tuple[str, str]], bytes]:
    event = SHAPES[api].build(method, path, body=body, headers=headers, query=query)
    result = handler(event, LambdaContext(function_name=name))
    status = int(result.get("statusCode", 502))
    out_headers: list[tuple[str, str]] = []
    for key, values in (result.get("multiValueHeaders") or {}).items():
        out_headers += [(key, str(v)) for v in values]
    for key, value in (result.get("headers") or {}).items():
        out_headers.append((key, str(value)))
    out_headers += [("Set-Cookie", cookie) for cookie in result.get("cookies") or []]
    raw = result.get("body") or ""
    payload = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode("utf-8")
    return status, out_headers, payload


class _Refusal(Exception):
    """A request the emulator answers itself, as API Gateway would, before the function sees it."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _json_error(status: int, code: str, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    return status, [("Content-Type", "application/json")], json.dumps({"error": message, "code": code}).encode()


class _RequestHandler(BaseHTTPRequestHandler):
    server: EmulatorServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    timeout = SOCKET_TIMEOUT_S

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except _Refusal as refusal:
            self._refuse(refusal)
            return
        except TimeoutError:
            self._refuse(_Refusal(408, "request_timeout", f"the body did not arrive within {SOCKET_TIMEOUT_S} s"))
            return
        path, _, query = self.path.partition("?")
        headers = {key: value for key, value in self.headers.items() if key.lower() != "transfer-encoding"}
        if "Transfer-Encoding" in self.headers:
            headers["Content-Length"] = str(len(body))
        try:
            with self.server.lock:
                status, out_headers, payload = invoke(
                    self.server.handler, self.server.name, self.command, path, query, headers, body, self.server.api
                )
        except Exception:
            # What API Gateway answers when the function itself fails (the handler never should).
            log.exception("the handler raised")
            status, out_headers, payload = (
                502,
                [("Content-Type", "application/json")],
                b'{"message": "Internal server error"}',
            )
        self._reply(status, out_headers, payload)

    def _declared_length(self) -> int | None:
        """Content-Length as a number in [0, the cap], or a refusal; None for a chunked body."""
        lengths = self.headers.get_all("Content-Length") or []
        encodings = self.headers.get_all("Transfer-Encoding") or []
        if encodings:
            if lengths:
                raise _Refusal(400, "bad_request", "a request has Content-Length or Transfer-Encoding, not both")
            if [e.strip().lower() for e in ",".join(encodings).split(",")] != ["chunked"]:
                raise _Refusal(501, "unsupported_transfer_encoding", "only Transfer-Encoding: chunked is supported")
            return None
        if not lengths:
            return 0
        values = {value.strip() for value in lengths}
        text = values.pop()
        if values or not (text.isascii() and text.isdigit()):
            raise _Refusal(400, "bad_content_length", "Content-Length must be one non-negative integer")
        if int(text) > MAX_REQUEST_BYTES:
            raise _Refusal(413, "payload_too_large", f"request larger than {MAX_REQUEST_BYTES // 2**20} MB")
        return int(text)

    def _read_body(self) -> bytes:
        length = self._declared_length()
        return self._read_chunked() if length is None else self._read_exactly(length)

    def _read_exactly(self, length: int) -> bytes:
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            raise _Refusal(400, "incomplete_body", f"the body ended after {len(body)} of its {length} bytes")
        return body

    def _read_chunked(self) -> bytes:
        """A chunked body, refused (413) as soon as it would pass the cap: never buffered beyond it."""
        body = bytearray()
        while True:
            line = self.rfile.readline(MAX_CHUNK_LINE)
            size = line.split(b";", 1)[0].strip()
            if not line.endswith(b"\n") or not re.fullmatch(rb"[0-9A-Fa-f]{1,8}", size):
                raise _Refusal(400, "bad_chunk", "a chunk of the body does not start with its size in hex")
            count = int(size, 16)
            if count == 0:
                break
            if len(body) + count > MAX_REQUEST_BYTES:
                raise _Refusal(413, "payload_too_large", f"request larger than {MAX_REQUEST_BYTES // 2**20} MB")
            body += self._read_exactly(count)
            if self.rfile.readline(MAX_CHUNK_LINE).strip():
                raise _Refusal(400, "bad_chunk", "a chunk of the body is longer than its size says")
        for _ in range(MAX_TRAILERS):
            if self.rfile.readline(MAX_CHUNK_LINE).strip() == b"":
                return bytes(body)
        raise _Refusal(400, "bad_chunk", "too many trailers after the chunked body")

    def handle_expect_100(self) -> bool:
        """Refuse a body before the client sends it."""
        try:
            self._declared_length()
        except _Refusal as refusal:
            self._refuse(refusal)
            return False
        return bool(super().handle_expect_100())

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (a malformed request line, headers too long) as JSON too."""
        short, _ = self.responses.get(code, ("error", ""))
        text = "; ".join(part for part in (message or short, explain) if part)
        self._refuse(_Refusal(code, "bad_request" if code == 400 else short.lower().replace(" ", "_"), text))

    def _refuse(self, refusal: _Refusal) -> None:
        """Answer and close without reading the rest of the body; what the client already sent is
        drained for a moment so that it reads the answer instead of a reset connection."""
        self.close_connection = True
        self.request_version = self.protocol_version  # a status line even for a request line that had none
        self._reply(*_json_error(refusal.status, refusal.code, refusal.message), extra=[("Connection", "close")])
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(LINGER_S)
            deadline = time.monotonic() + LINGER_S
            while time.monotonic() < deadline and self.connection.recv(65536):
                pass
        except OSError:
            pass

    def _reply(
        self, status: int, headers: list[tuple[str, str]], payload: bytes, extra: Sequence[tuple[str, str]] = ()
    ) -> None:
        self.send_response(status)
        for key, value in [*headers, *extra]:
            if key.lower() != "content-length":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(
        self,
        handler: Handler,
        name: str,
        settings: RuntimeSettings,
        host: str = "127.0.0.1",
        port: int = 3000,
        verbose: bool = False,
        api: ApiKind = ApiKind.REST,
    ) -> None:
        self.handler = handler
        self.settings = settings
        self.api = api
        self.name = name
        self.verbose = verbose
        self.lock = threading.Lock()
        """One request at a time per server, as one Lambda container serves one at a time."""
        super().__init__((host, port), _RequestHandler)


def serve_bundle(
    bundle: Path,
    host: str = "127.0.0.1",
    port: int = 3000,
    verbose: bool = False,
    api: ApiKind | None = None,
    *,
    load: bool = True,
) -> EmulatorServer:
    """Bind the server and, with `load`, load the bundle's handler in this process."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise LambdafitError(f"lambdafit serve listens on loopback only, not {host}: it is a development server")
    opened = open_bundle(bundle)
    handler = make_handler(opened.settings) if load else _not_loaded
    try:
        return EmulatorServer(handler, opened.app.name, opened.settings, host, port, verbose, api or opened.app.api)
    except OSError as exc:
        raise LambdafitError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port") from exc


def _not_loaded(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise RuntimeError("the handler is loaded by each worker after it starts")


def serve_workers(server: EmulatorServer, workers: int) -> None:
    """Serve on `workers` processes sharing one listening socket, like that many warm Lambda containers.

    The server must come from serve_bundle(load=False): every process, forked first, then loads its own
    handler (onnxruntime's thread pools do not survive a fork). Accepts are non-blocking, so a process
    that loses the race for a connection goes back to waiting instead of blocking in accept().

    However this process ends, no worker keeps the port: an exception here (SIGINT, or SIGTERM under
    interrupt.catching()) stops every worker and waits for it, and a worker dies with this process
    even when it is killed outright (PR_SET_PDEATHSIG)."""
    server.socket.setblocking(False)
    parent = os.getpid()
    children: list[int] = []
    try:
        for _ in range(workers - 1):
            pid = os.fork()
            if pid == 0:
                _become_worker(server, parent)
            children.append(pid)
        server.handler = make_handler(server.settings)
        server.serve_forever()
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        server.server_close()


def _become_worker(server: EmulatorServer, parent: int) -> NoReturn:
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _die_with_parent()
        if os.getppid() != parent:  # the parent was gone before the worker could ask to die with it
            os._exit(0)
        server.handler = make_handler(server.settings)
        server.serve_forever()
    finally:
        os._exit(0)


PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Linux: SIGTERM this process when its parent dies, however the parent dies."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
