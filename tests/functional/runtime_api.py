"""A stand-in for Lambda's Runtime API on 127.0.0.1, for testing handlers.bootstrap: it hands out queued
events, and records each answer as it arrives: the request's headers, every chunk of a chunked body with
the time it arrived, and the trailers. `sam local` and the Runtime Interface Emulator buffer whole
responses, so this is where streaming is observable.

`hang_up_after` makes it close the connection once that many body bytes have arrived, as Lambda does
when the caller goes away."""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PREFIX = "/2018-06-01/runtime"


@dataclass
class Answer:
    request_id: str
    kind: str
    """response, error or init-error."""
    headers: dict[str, str]
    chunks: list[tuple[float, bytes]] = field(default_factory=list)
    """(time.monotonic() on arrival, bytes) for each chunk of a chunked body; one entry for a plain body."""
    trailers: dict[str, str] = field(default_factory=dict)
    complete: bool = False
    """The body ended (the zero-length chunk, or the whole Content-Length) rather than being cut off."""

    @property
    def body(self) -> bytes:
        return b"".join(chunk for _, chunk in self.chunks)


class RuntimeApiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.events: queue.Queue[tuple[str, Any, int]] = queue.Queue()
        self.answers: dict[str, Answer] = {}
        self.done = threading.Condition()
        self.hang_up_after: int | None = None

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A runtime that was stopped while it waited for an invocation is no error here."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def invoke(self, event: Any, timeout_ms: int = 60_000) -> str:
        request_id = str(uuid.uuid4())
        self.events.put((request_id, event, int(time.time() * 1000) + timeout_ms))
        return request_id

    def wait(self, request_id: str, timeout: float = 60.0) -> Answer:
        with self.done:
            self.done.wait_for(lambda: request_id in self.answers and self.answers[request_id].kind != "", timeout)
        return self.answers[request_id]

    def record(self, answer: Answer) -> None:
        with self.done:
            self.answers[answer.request_id] = answer
            self.done.notify_all()


class _Handler(BaseHTTPRequestHandler):
    server: RuntimeApiServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        if self.path != f"{PREFIX}/invocation/next":
            self.send_error(404)
            return
        request_id, event, deadline = self.server.events.get()
        payload = json.dumps(event).encode()
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
        self.send_header("Lambda-Runtime-Deadline-Ms", str(deadline))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:f")
        self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self) -> None:
        parts = self.path[len(PREFIX) :].strip("/").split("/")
        if parts == ["init", "error"]:
            request_id, kind = "init", "init-error"
        elif len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
            request_id, kind = parts[1], parts[2]
        else:
            self.send_error(404)
            return
        answer = Answer(request_id, "", {k: v for k, v in self.headers.items()})
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            if not self._read_chunks(answer):
                answer.kind = kind
                self.server.record(answer)
                self.close_connection = True
                self.connection.close()
                return
        else:
            length = int(self.headers.get("Content-Length") or 0)
            answer.chunks.append((time.monotonic(), self.rfile.read(length)))
            answer.complete = True
        answer.kind = kind
        self.send_response(202)
        self.send_header("Content-Length", "16")
        self.end_headers()
        self.wfile.write(b'{"status":"OK"}\n')
        self.server.record(answer)

    def _read_chunks(self, answer: Answer) -> bool:
        """Read a chunked body chunk by chunk, stamping each; False if it hung up on purpose."""
        received = 0
        while True:
            size_line = self.rfile.readline()
            if not size_line:
                return True
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while (line := self.rfile.readline()) not in (b"\r\n", b"\n", b""):
                    key, _, value = line.decode("latin-1").partition(":")
                    answer.trailers[key.strip()] = value.strip()
                answer.complete = True
                return True
            data = self.rfile.read(size)
            self.rfile.readline()
            answer.chunks.append((time.monotonic(), data))
            received += size
            limit = self.server.hang_up_after
            if limit is not None and received >= limit:
                return False
