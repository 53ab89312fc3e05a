"""`lambdafit serve`: API Gateway on a laptop, no Docker. Each HTTP request becomes a real REST proxy
event for the bundle's handler, called in-process, and its result becomes the HTTP response."""

from __future__ import annotations

import base64
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from handlers.app import make_handler
from handlers.contract import ENV_VARS, FUNCTION_DIR, MODEL_DIR, ApiKind, ContractError, RuntimeSettings
from handlers.events import SHAPES
from handlers.manifest import Task
from packager.errors import LambdafitError
from packager.serve_stream import can_stream, serve_streamed
from packager.template import AppModel

log = logging.getLogger("lambdafit.serve")
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
MAX_REQUEST_BYTES = 10 * 1024 * 1024
"""API Gateway's own limit; the handler enforces Lambda's 6 MB itself, as it would in AWS."""


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


class _RequestHandler(BaseHTTPRequestHandler):
    server: EmulatorServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            self._reply(
                413,
                [("Content-Type", "application/json")],
                b'{"error": "request larger than 10 MB", "code": "payload_too_large"}',
            )
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        headers = {key: value for key, value in self.headers.items()}
        try:
            with self.server.lock:
                if can_stream(self.server.handler, self.server.api, self.server.streaming):
                    context = LambdaContext(function_name=self.server.name, timeout_s=self.server.timeout_s)
                    serve_streamed(self, self.server.handler, context, self.server.api, path, query, headers, body)
                    return
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

    def _reply(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
        self.send_response(status)
        for key, value in headers:
            if key.lower() != "content-length":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True

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
        self.streaming = False
        """The bundle's function streams its responses (packager.serve_stream), as its template deploys it."""
        self.timeout_s = 29.0
        self.task = Task.GENERIC
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
        server = EmulatorServer(handler, opened.app.name, opened.settings, host, port, verbose, api or opened.app.api)
    except OSError as exc:
        raise LambdafitError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port") from exc
    server.streaming, server.timeout_s, server.task = opened.app.streaming, float(opened.app.timeout_s), opened.app.task
    return server


def _not_loaded(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise RuntimeError("the handler is loaded by each worker after it starts")


def serve_workers(server: EmulatorServer, workers: int) -> None:
    """Serve on `workers` processes sharing one listening socket, like that many warm Lambda containers.

    The server must come from serve_bundle(load=False): every process, forked first, then loads its own
    handler (onnxruntime's thread pools do not survive a fork). Accepts are non-blocking, so a process
    that loses the race for a connection goes back to waiting instead of blocking in accept()."""
    server.socket.setblocking(False)
    children: list[int] = []
    for _ in range(workers - 1):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                server.handler = make_handler(server.settings)
                server.serve_forever()
            finally:
                os._exit(0)
        children.append(pid)
    try:
        server.handler = make_handler(server.settings)
        server.serve_forever()
    finally:
        for pid in children:
            os.kill(pid, signal.SIGTERM)
        for pid in children:
            os.waitpid(pid, 0)
        server.server_close()
