"""Raw-socket checks of `lambdafit serve`, shared by tests/hostile/test_class9_local_server.py and
bench/hardening.py: hostile request framings with the refusal each must get, a burst of new
connections, and the kernel's view of who listens on a port."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from packager import emulator

ROOT = Path(__file__).resolve().parents[2]

PREDICT = json.dumps({"inputs": [[0.5] * 64]}).encode()


def listen_counters() -> dict[str, int]:
    """The kernel's count of connections dropped because an accept queue was full."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    names, values = next((a.split(), b.split()) for a, b in itertools.pairwise(lines) if a.startswith("TcpExt"))
    return {n: int(v) for n, v in zip(names, values, strict=True) if n in ("ListenOverflows", "ListenDrops")}


def backlog(port: int) -> int:
    """Send-Q of a listening socket, as `ss` shows it: the backlog it was listen()ed with."""
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return int(out.split()[2]) if out.strip() else 0


def exchange(
    port: int, data: bytes, *, half_close: bool = False, timeout: float = 10
) -> list[tuple[int, dict[str, str], bytes]]:
    """Send raw bytes, read every response until the server closes (or `timeout`)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except TimeoutError:
            pass
    return parse_responses(received)


def parse_responses(raw: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    responses = []
    while raw:
        head, _, raw = raw.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in header_lines)}
        length = int(headers.get("content-length", "0"))
        body, raw = raw[:length], raw[length:]
        responses.append((int(status_line.split()[1]), headers, body))
    return responses


def post(headers: str, body: bytes = b"") -> bytes:
    return f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{headers}\r\n".encode() + body


def chunked(*parts: bytes, extension: str = "", trailers: str = "") -> bytes:
    body = b"".join(f"{len(p):x}{extension}\r\n".encode() + p + b"\r\n" for p in parts)
    return body + b"0\r\n" + trailers.encode() + b"\r\n"


TEN_MB = emulator.MAX_REQUEST_BYTES
FRAMING: dict[str, tuple[bytes, int, str, bool]] = {
    # name: (bytes sent, status, code, half-close after sending)
    "length-minus-one": (post("Content-Length: -1\r\n", PREDICT), 400, "bad_content_length", False),
    "length-words": (post("Content-Length: abc\r\n", PREDICT), 400, "bad_content_length", False),
    "length-empty": (post("Content-Length: \r\n", PREDICT), 400, "bad_content_length", False),
    "length-plus": (post(f"Content-Length: +{len(PREDICT)}\r\n", PREDICT), 400, "bad_content_length", False),
    "length-float": (post("Content-Length: 1e3\r\n", PREDICT), 400, "bad_content_length", False),
    "length-hex": (post("Content-Length: 0x10\r\n", PREDICT), 400, "bad_content_length", False),
    "length-unicode-digits": (
        post("Content-Length: \u0661\u0662\r\n".encode("utf-8").decode("latin-1")),
        400,
        "bad_content_length",
        False,
    ),
    "length-two-values": (
        post("Content-Length: 5\r\nContent-Length: 7\r\n", PREDICT),
        400,
        "bad_content_length",
        False,
    ),
    "length-list": (post("Content-Length: 5, 7\r\n", PREDICT), 400, "bad_content_length", False),
    "length-huge": (post("Content-Length: 99999999999999999999999\r\n"), 413, "payload_too_large", False),
    "length-just-over-cap": (post(f"Content-Length: {TEN_MB + 1}\r\n"), 413, "payload_too_large", False),
    "length-over-cap-with-body": (
        post(f"Content-Length: {TEN_MB + 1}\r\n", b"x" * 1_000_000),
        413,
        "payload_too_large",
        False,
    ),
    "length-and-chunked": (
        post(f"Content-Length: {len(PREDICT)}\r\nTransfer-Encoding: chunked\r\n", chunked(PREDICT)),
        400,
        "bad_request",
        False,
    ),
    "gzip-encoding": (post("Transfer-Encoding: gzip\r\n", PREDICT), 501, "unsupported_transfer_encoding", False),
    "gzip-then-chunked": (
        post("Transfer-Encoding: gzip, chunked\r\n", chunked(PREDICT)),
        501,
        "unsupported_transfer_encoding",
        False,
    ),
    "body-shorter-than-length": (post("Content-Length: 100\r\n", PREDICT[:50]), 400, "incomplete_body", True),
    "body-stalls": (post("Content-Length: 100\r\n", PREDICT[:50]), 408, "request_timeout", False),
    "chunk-size-not-hex": (post("Transfer-Encoding: chunked\r\n", b"zz\r\nabc\r\n0\r\n\r\n"), 400, "bad_chunk", False),
    "chunk-size-negative": (post("Transfer-Encoding: chunked\r\n", b"-5\r\nabc\r\n0\r\n\r\n"), 400, "bad_chunk", False),
    "chunk-size-line-endless": (post("Transfer-Encoding: chunked\r\n", b"1" * 10_000), 400, "bad_chunk", False),
    "chunk-longer-than-size": (
        post("Transfer-Encoding: chunked\r\n", b"2\r\nabcdef\r\n0\r\n\r\n"),
        400,
        "bad_chunk",
        False,
    ),
    "chunk-cut-off": (post("Transfer-Encoding: chunked\r\n", b"10\r\nabc"), 400, "incomplete_body", True),
    "chunk-over-cap-declared": (
        post("Transfer-Encoding: chunked\r\n", f"{TEN_MB + 1:x}\r\n".encode()),
        413,
        "payload_too_large",
        False,
    ),
    "chunks-adding-up-over-cap": (
        post(
            "Transfer-Encoding: chunked\r\n",
            f"{TEN_MB // 2:x}\r\n".encode() + b"x" * (TEN_MB // 2) + b"\r\n" + f"{TEN_MB // 2 + 1:x}\r\n".encode(),
        ),
        413,
        "payload_too_large",
        False,
    ),
    "chunk-size-absurd": (post("Transfer-Encoding: chunked\r\n", b"ffffffffffffffffffff\r\n"), 400, "bad_chunk", False),
    "request-line-garbage": (b"GARBAGE\r\n\r\n", 400, "bad_request", False),
    "header-line-too-long": (post("X-Long: " + "a" * 70_000 + "\r\n"), 431, "request_header_fields_too_large", False),
    "too-many-headers": (
        post("".join(f"X-{i}: 1\r\n" for i in range(150))),
        431,
        "request_header_fields_too_large",
        False,
    ),
    "http-version-bad": (b"POST /predict HTTP/9.9\r\nHost: x\r\n\r\n", 505, "http_version_not_supported", False),
    "expect-continue-over-cap": (
        post(f"Content-Length: {TEN_MB + 1}\r\nExpect: 100-continue\r\n"),
        413,
        "payload_too_large",
        False,
    ),
    "expect-continue-bad-length": (
        post("Content-Length: -1\r\nExpect: 100-continue\r\n"),
        400,
        "bad_content_length",
        False,
    ),
}


def burst(port: int, count: int = 100) -> list[int]:
    """`count` clients open new connections at the same moment and each POST once."""
    statuses: list[int] = [0] * count
    barrier = threading.Barrier(count)

    def one(index: int) -> None:
        barrier.wait()
        try:
            [(status, _, body)] = exchange(port, post(f"Content-Length: {len(PREDICT)}\r\nConnection: close\r\n", PREDICT),
                                           timeout=30)  # fmt: skip
            statuses[index] = status if json.loads(body)["model"] == "digits" else -1
        except (OSError, ValueError):
            statuses[index] = -2

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return statuses


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listeners(port: int) -> list[str]:
    """Every socket listening on the port, from the kernel's own table."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return [row for row in rows if row.split()[1].endswith(f":{port:04X}") and row.split()[3] == "0A"]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def children_of(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@dataclass
class StopOutcome:
    returncode: int
    stderr: str
    workers: int
    answers: list[int]
    workers_left: list[int]
    listeners_left: list[str]
    port_reusable: bool


def serve_and_stop(bundle: Path, signum: int, *, group: bool, workers: int) -> StopOutcome:
    """`lambdafit serve --workers N` in its own session: wait until it listens, send it a burst of 100
    new connections, stop it with `signum` (to the group: a terminal's Ctrl-C), and look at what is left."""
    port = free_port()
    env = os.environ | {"PYTHONPATH": str(ROOT), "POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "ERROR"}
    command = [
        sys.executable,
        "-m",
        "packager.cli",
        "serve",
        str(bundle),
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    ) as process:
        try:
            deadline = time.monotonic() + 60
            while not listeners(port) and time.monotonic() < deadline:
                time.sleep(0.1)
            children = children_of(process.pid)
            answers = burst(port)
            (os.killpg if group else os.kill)(process.pid, signum)
            returncode = process.wait(30)
            _, stderr = process.communicate()
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.1)
    reusable = True
    with socket.socket() as probe:  # a new serve on the same port starts (its TIME_WAIT connections aside)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            probe.listen()
        except OSError:
            reusable = False
    return StopOutcome(
        returncode=returncode,
        stderr=stderr,
        workers=len(children),
        answers=answers,
        workers_left=[pid for pid in children if alive(pid)],
        listeners_left=listeners(port),
        port_reusable=reusable,
    )
