"""#10 class 9: `lambdafit serve` survives what clients and operators do to a server: any stop signal
leaves no process on the port, hostile framing gets a JSON 4xx without buffering past the 10 MB cap,
chunked bodies are read, and a burst of new connections is queued, not dropped."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from packager import emulator
from tests.hostile.server_checks import (
    FRAMING,
    PREDICT,
    backlog,
    burst,
    chunked,
    exchange,
    listen_counters,
    post,
    serve_and_stop,
)


@pytest.fixture(scope="module")
def server(digits_bundle: Path) -> Iterator[tuple[int, emulator.EmulatorServer]]:
    """The emulator in this process, with a short socket timeout so a stalled body is seen quickly."""
    original = emulator._RequestHandler.timeout
    emulator._RequestHandler.timeout = 2
    server = emulator.serve_bundle(digits_bundle, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], server
    finally:
        server.shutdown()
        server.server_close()
        emulator._RequestHandler.timeout = original


@pytest.mark.parametrize("case", list(FRAMING))
def test_class9_hostile_framing_gets_a_json_refusal_and_a_closed_connection(
    server: tuple[int, emulator.EmulatorServer], case: str, capfd: pytest.CaptureFixture[str]
) -> None:
    data, status, code, half_close = FRAMING[case]
    responses = exchange(server[0], data, half_close=half_close)
    assert [r[0] for r in responses] == [status], responses
    _, headers, body = responses[0]
    assert headers["content-type"] == "application/json" and headers["connection"] == "close"
    answer = json.loads(body)
    assert answer["code"] == code and answer["error"], answer
    if status == 413:
        assert "10 MB" in answer["error"]
    assert "Traceback" not in capfd.readouterr().err


def test_class9_a_body_longer_than_its_length_is_two_requests_both_answered_in_json(
    server: tuple[int, emulator.EmulatorServer],
) -> None:
    responses = exchange(server[0], post(f"Content-Length: {len(PREDICT)}\r\n", PREDICT + b"trailing junk\r\n\r\n"))
    assert [r[0] for r in responses] == [200, 400]
    assert json.loads(responses[1][2])["code"] == "bad_request"


@pytest.mark.parametrize(
    "framing",
    [
        post(f"Content-Length: {len(PREDICT)}\r\n", PREDICT),
        post(f"Content-Length: {len(PREDICT)}\r\nContent-Length: {len(PREDICT)}\r\n", PREDICT),
        post("Transfer-Encoding: chunked\r\n", chunked(PREDICT)),
        post("Transfer-Encoding: chunked\r\n", chunked(*[PREDICT[i : i + 7] for i in range(0, len(PREDICT), 7)])),
        post("Transfer-Encoding: Chunked\r\n", chunked(PREDICT[:10], PREDICT[10:], extension=";name=value")),
        post("Transfer-Encoding: chunked\r\n", chunked(PREDICT, trailers="X-Checksum: 1\r\nX-Other: 2\r\n")),
        post(f"Content-Length: {len(PREDICT)}\r\nExpect: 100-continue\r\n", PREDICT),
    ],
    ids=[
        "length",
        "same-length-twice",
        "chunked",
        "chunked-7-byte-pieces",
        "chunked-extension",
        "chunked-trailers",
        "expect-continue",
    ],
)
def test_class9_every_framing_of_the_same_request_gets_the_same_answer(
    server: tuple[int, emulator.EmulatorServer], framing: bytes
) -> None:
    responses = [r for r in exchange(server[0], framing + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", timeout=3)
                 if r[0] != 100]  # fmt: skip
    assert [r[0] for r in responses] == [200, 200], responses
    answer = json.loads(responses[0][2])
    assert answer["model"] == "digits" and len(answer["outputs"]["logits"][0]) == 10


def test_class9_a_chunked_body_reaches_the_handler_whole(server: tuple[int, emulator.EmulatorServer]) -> None:
    big = json.dumps({"inputs": [[0.25] * 64] * 3000}).encode()  # about 0.7 MB in 64 KB chunks
    pieces = [big[i : i + 65536] for i in range(0, len(big), 65536)]
    [(status, _, body)] = exchange(
        server[0], post("Transfer-Encoding: chunked\r\nConnection: close\r\n", chunked(*pieces))
    )
    assert status == 200 and len(json.loads(body)["outputs"]["logits"]) == 3000


def test_class9_the_listen_backlog_takes_bursts(server: tuple[int, emulator.EmulatorServer]) -> None:
    assert backlog(server[0]) >= 128


def test_class9_a_hundred_new_connections_at_once_all_get_answers(server: tuple[int, emulator.EmulatorServer]) -> None:
    before = listen_counters()
    statuses = burst(server[0])
    assert statuses == [200] * 100
    assert listen_counters() == before, "the kernel dropped connections: the accept queue overflowed"


STOPS = {
    "sigterm": (signal.SIGTERM, False, 0),
    "sigint": (signal.SIGINT, False, 0),
    "ctrl-c-to-the-group": (signal.SIGINT, True, 0),
    "sigkill": (signal.SIGKILL, False, -9),
}


@pytest.mark.parametrize("stop", list(STOPS))
def test_class9_stopping_serve_workers_leaves_no_process_on_the_port(digits_bundle: Path, stop: str) -> None:
    signum, group, expected = STOPS[stop]
    outcome = serve_and_stop(digits_bundle, signum, group=group, workers=2)
    assert outcome.workers == 1 and outcome.answers == [200] * 100
    assert outcome.returncode == expected, outcome.stderr
    assert outcome.workers_left == [], "a worker outlived serve"
    assert outcome.listeners_left == [] and outcome.port_reusable
    assert "Traceback" not in outcome.stderr
