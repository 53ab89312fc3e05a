"""Text generation end to end, on a tiny random-weight Llama with the Jargon File's tokenizer: `pack --task
text-generation` with the real builder, the official `openai` client against `lambdafit serve` (streamed
and not), bad input answered 4xx in OpenAI's shape, a client that hangs up mid-stream, and the bundle's own
runtime loop (handlers.bootstrap) against a local Runtime API that records the chunked stream."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from handlers.events import FunctionUrlEvent, RestEvent
from handlers.streaming import DELIMITER, PRELUDE_CONTENT_TYPE
from tests.conftest import DECODER_CONTEXT as CONTEXT
from tests.conftest import http
from tests.functional.runtime_api import RuntimeApiServer


@pytest.fixture(scope="module")
def server(gen_bundle: Path) -> Iterator[Any]:
    from packager.emulator import serve_bundle

    server = serve_bundle(gen_bundle, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def base(server: Any) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def client(server: Any) -> Any:
    from openai import OpenAI

    return OpenAI(base_url=base(server) + "/v1", api_key="unused", max_retries=0, timeout=60)


def test_pack_measures_every_candidate_and_writes_a_streaming_bundle(gen_bundle: Path) -> None:
    report = json.loads((gen_bundle / "report.json").read_text())
    assert report["task"] == "text-generation" and report["streaming"] is True
    candidates = {c["recipe"]: c for c in report["candidates"]}
    assert set(candidates) == {"fp32", "int4"}
    for candidate in candidates.values():
        metrics = candidate["metrics"]
        assert metrics["perplexity"] > 1 and 0 < metrics["agreement"] <= 1
        assert metrics["tokens_per_s"] > 0 and metrics["ttft_ms"] > 0 and metrics["peak_rss_mb"] > 50
    assert candidates["fp32"]["metrics"]["quality"] == 1.0 and candidates["fp32"]["metrics"]["agreement"] == 1.0
    assert candidates["int4"]["metrics"]["size_bytes"] < candidates["fp32"]["metrics"]["size_bytes"]
    manifest = json.loads((gen_bundle / "function/model/manifest.json").read_text())
    assert manifest["task"] == "text-generation" and manifest["generation"]["context_length"] == CONTEXT
    for name in manifest["generation"]["files"]:
        assert (gen_bundle / "function/model" / name).is_file()
    dockerfile = (gen_bundle / "function/Dockerfile").read_text()
    assert 'ENTRYPOINT ["python3", "-m", "handlers.bootstrap"]' in dockerfile
    assert any("onnxruntime_genai" in w.name for w in (gen_bundle / "function/wheels").iterdir())
    template = (gen_bundle / "template.yaml").read_text()
    assert "ResponseTransferMode: RESPONSE_STREAM" in template and "/v1/chat/completions" in template
    assert "/predict" not in template
    assert {p.name for p in (gen_bundle / "events").iterdir()} >= {"chat-rest.json", "chat-stream-rest.json"}
    assert "| perplexity |" in (gen_bundle / "report.md").read_text()


def test_openai_client_without_streaming(server: Any) -> None:
    openai = client(server)
    [model] = openai.models.list().data
    assert model.id == "tiny" and openai.models.retrieve("tiny").id == "tiny"
    chat = openai.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "What is a hacker?"}], max_tokens=12, temperature=0
    )
    assert chat.choices[0].message.role == "assistant" and chat.choices[0].finish_reason in ("stop", "length")
    assert chat.usage is not None and chat.usage.prompt_tokens > 0
    assert chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens
    again = openai.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "What is a hacker?"}], max_tokens=12, temperature=0
    )
    assert again.choices[0].message.content == chat.choices[0].message.content  # greedy is deterministic
    text = openai.completions.create(model="tiny", prompt="A hacker is", max_tokens=8, temperature=0.8, seed=5)
    assert text.choices[0].finish_reason == "length" and text.usage is not None
    assert text.usage.completion_tokens == 8
    same = openai.completions.create(model="tiny", prompt="A hacker is", max_tokens=8, temperature=0.8, seed=5)
    assert same.choices[0].text == text.choices[0].text  # a seed makes sampling repeatable


@pytest.fixture
def paced(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test decoder writes a token in well under a millisecond, so 200 of them are over before a
    client has read its first chunk and "as they are generated" cannot be told from "all at once". At
    2 ms a token (a real model on Lambda takes 20-100 ms) it can."""
    from handlers.generation import Generation

    step = Generation._step

    def slower(self: Generation) -> str:
        time.sleep(0.002)
        return step(self)

    monkeypatch.setattr(Generation, "_step", slower)


@pytest.mark.usefixtures("paced")
def test_openai_client_streams_chunks_as_they_are_generated(server: Any) -> None:
    openai = client(server)
    start = time.monotonic()
    stream = openai.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "What is a hacker?"}],
        max_tokens=200,
        temperature=1.0,
        seed=1,
        stream=True,
        stream_options={"include_usage": True},
    )
    arrivals, texts, finish, usage = [], [], None, None
    for chunk in stream:
        arrivals.append(time.monotonic() - start)
        if chunk.choices:
            texts.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        usage = chunk.usage or usage
    end = time.monotonic() - start
    assert usage is not None and usage.completion_tokens > 10 and finish in ("stop", "length")
    content_arrivals = [t for t, text in zip(arrivals[: len(texts)], texts, strict=True) if text]
    # the first text left the server well before generation ended (the [DONE] event follows it)
    assert content_arrivals[0] < end / 2, (content_arrivals[0], end)
    assert len({round(t, 3) for t in content_arrivals}) > 5  # spread over time, not delivered at once
    buffered = openai.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "What is a hacker?"}], max_tokens=200, seed=1
    )
    assert buffered.choices[0].message.content == "".join(texts)  # streamed and buffered agree


BAD = [
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x " * 400}]}, 400, "context_length_exceeded"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5000}, 400,
     "context_length_exceeded"),
    ("/v1/completions", {"prompt": "hi", "max_tokens": CONTEXT}, 400, "context_length_exceeded"),
    ("/v1/chat/completions", {"messages": [{"role": "robot", "content": "hi"}]}, 400, "invalid_request"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "temperature": -1}, 400,
     "invalid_request"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "top_p": 0}, 400, "invalid_request"),
    ("/v1/completions", {"prompt": "hi", "top_k": -3}, 400, "invalid_request"),
    ("/v1/completions", {"prompt": "hi", "repetition_penalty": -1}, 400, "invalid_request"),
    ("/v1/completions", {"prompt": "hi", "stop": 7}, 400, "invalid_request"),
    ("/v1/completions", {"prompt": ["a", "b"]}, 400, "invalid_request"),
    ("/v1/completions", {"prompt": [5, 99999]}, 400, "invalid_request"),
    ("/v1/completions", {"prompt": "hi", "n": 3}, 400, "unsupported_parameter"),
    ("/v1/completions", {"prompt": "hi", "model": "gpt-4o"}, 404, "model_not_found"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "changes", "status", "code"), BAD)
def test_bad_input_is_4xx_in_openais_shape(
    server: Any, path: str, changes: dict[str, Any], status: int, code: str
) -> None:
    got, body = http("POST", base(server) + path, json.dumps({"model": "tiny"} | changes).encode(),
                     {"Content-Type": "application/json"})  # fmt: skip
    assert (got, body["error"]["code"]) == (status, code), body
    assert body["error"]["type"] == "invalid_request_error" and body["error"]["message"]


def test_malformed_requests_and_routes(server: Any) -> None:
    url = base(server)
    got, body = http("POST", url + "/v1/chat/completions", b"{not json", {"Content-Type": "application/json"})
    assert got == 400 and body["error"]["code"] == "malformed_json"
    got, body = http("POST", url + "/v1/chat/completions", b"{}", {"Content-Type": "text/plain"})
    assert got == 415 and body["error"]["type"] == "invalid_request_error"
    got, body = http("GET", url + "/v1/chat/completions")
    assert got == 405
    got, body = http("POST", url + "/predict", b"{}", {"Content-Type": "application/json"})
    assert got == 404 and "/v1/chat/completions" in body["error"]["message"]
    got, body = http("GET", url + "/v1/models/other")
    assert got == 404 and body["error"]["code"] == "model_not_found"
    got, body = http("GET", url + "/health")
    assert got == 200 and body["model_ready"] is True


def test_the_client_raises_openais_exceptions(server: Any) -> None:
    import openai as sdk

    with pytest.raises(sdk.BadRequestError) as caught:
        client(server).chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}], top_p=1.5)
    assert caught.value.status_code == 400 and caught.value.body["param"] == "top_p"  # type: ignore[index]
    with pytest.raises(sdk.NotFoundError):
        client(server).chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])


def hang_up_mid_stream(server: Any) -> int:
    """Ask for a long streamed completion, read until the first text arrives, and hang up."""
    payload = json.dumps({"model": "tiny", "prompt": "A", "max_tokens": CONTEXT - 8, "stream": True,
                          "temperature": 1.0}).encode()  # fmt: skip
    with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=30) as sock:
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload))  # fmt: skip
        received = b""
        while b'"text":"' not in received.split(b"\r\n\r\n", 1)[-1]:
            received += sock.recv(4096)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    return len(received)


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS:"))


def test_a_client_that_hangs_up_stops_generation_and_nothing_leaks(server: Any) -> None:
    model = server.handler.endpoint.holder.model
    hang_up_mid_stream(server)
    assert http("GET", base(server) + "/health")[0] == 200  # the server is free again
    assert model.active == 0
    before, threads = rss_mb(), threading.active_count()
    for _ in range(30):
        hang_up_mid_stream(server)
        assert http("GET", base(server) + "/health")[0] == 200
    assert model.active == 0 and threading.active_count() <= threads + 1
    assert rss_mb() - before < 20


@pytest.mark.usefixtures("paced")
def test_a_hang_up_ends_generation_early(server: Any) -> None:
    """The generator stops within a few tokens of the hang-up, long before max_tokens."""
    model = server.handler.endpoint.holder.model
    counted = []
    original = type(model).generate

    def counting(self: Any, request: Any) -> Any:
        generation = original(self, request)
        counted.append(generation)
        return generation

    type(model).generate = counting
    try:
        hang_up_mid_stream(server)
        assert http("GET", base(server) + "/health")[0] == 200
    finally:
        type(model).generate = original
    [generation] = counted
    assert generation.completion_tokens < CONTEXT - 8, generation.completion_tokens


# The runtime loop, against a local Runtime API.


@pytest.fixture
def runtime_api() -> Iterator[RuntimeApiServer]:
    api = RuntimeApiServer()
    thread = threading.Thread(target=api.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        api.shutdown()
        api.server_close()


def event(path: str, body: dict[str, Any], shape: Any = FunctionUrlEvent) -> dict[str, Any]:
    return shape.build("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})


def chat(**changes: Any) -> dict[str, Any]:
    return {"model": "tiny", "messages": [{"role": "user", "content": "What is a hacker?"}]} | changes


def split_stream(raw: bytes) -> tuple[dict[str, Any], bytes]:
    at = raw.index(DELIMITER)
    return json.loads(raw[:at]), raw[at + len(DELIMITER) :]


def test_the_bootstrap_process_streams_to_the_runtime_api(
    gen_bundle: Path, runtime_api: RuntimeApiServer, tmp_path: Path
) -> None:
    """`python -m handlers.bootstrap`, the image's entry point, run from the bundle's own function folder."""
    function = gen_bundle / "function"
    env = os.environ | {"AWS_LAMBDA_RUNTIME_API": runtime_api.address, "AWS_LAMBDA_FUNCTION_NAME": "tiny",
                        "PYTHONPATH": str(function), "POWERTOOLS_METRICS_DISABLED": "true"}  # fmt: skip
    env.pop("AWS_SAM_LOCAL", None)
    log = (tmp_path / "bootstrap.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "handlers.bootstrap"], cwd=function, env=env, stdout=log,
                               stderr=subprocess.STDOUT)  # fmt: skip
    try:
        streamed = runtime_api.invoke(event("/v1/chat/completions", chat(max_tokens=150, stream=True, seed=3)))
        answer = runtime_api.wait(streamed)
        assert answer.kind == "response" and answer.complete and not answer.trailers
        assert answer.headers["Lambda-Runtime-Function-Response-Mode"] == "streaming"
        assert answer.headers["Transfer-Encoding"] == "chunked"
        assert answer.headers["Content-Type"] == PRELUDE_CONTENT_TYPE
        first = answer.chunks[0][1]
        assert (
            first
            == b'{"statusCode":200,"headers":{"Content-Type":"text/event-stream","Cache-Control":"no-cache"}}'
            + bytes(8)
        )
        meta, body = split_stream(answer.body)
        assert meta["statusCode"] == 200
        events = [line[6:] for line in body.decode().split("\n\n") if line]
        assert events[-1] == "[DONE]" and len(events) > 10
        times = [t for t, _ in answer.chunks]
        assert len(answer.chunks) == len(events) + 1  # the prelude, then one chunk per event, as produced
        assert times[1] < times[-1] - (times[-1] - times[0]) / 2
        buffered = runtime_api.invoke(event("/v1/chat/completions", chat(max_tokens=5), shape=RestEvent))
        answer = runtime_api.wait(buffered)
        meta, body = split_stream(answer.body)
        assert meta == {"statusCode": 200, "headers": {"Content-Type": "application/json"}}
        assert json.loads(body)["object"] == "chat.completion"
        bad = runtime_api.invoke(event("/v1/chat/completions", chat(temperature=9, stream=True)))
        meta, body = split_stream(runtime_api.wait(bad).body)
        assert meta["statusCode"] == 400 and json.loads(body)["error"]["param"] == "temperature"
    finally:
        process.kill()
        process.wait()
        log.close()


def run_loop(handler: Any, api: RuntimeApiServer, invocations: int, **env: str) -> threading.Thread:
    from handlers.bootstrap import RuntimeApi, serve

    environ = {"AWS_LAMBDA_FUNCTION_NAME": "tiny"} | env
    thread = threading.Thread(target=serve, args=(RuntimeApi(api.address), handler, environ),
                              kwargs={"invocations": invocations}, daemon=True)  # fmt: skip
    thread.start()
    return thread


@pytest.fixture(scope="module")
def handler(gen_bundle: Path) -> Any:
    from tests.conftest import handler_for

    return handler_for(gen_bundle / "function" / "model")


def test_a_runtime_api_that_stops_reading_stops_generation(handler: Any, runtime_api: RuntimeApiServer) -> None:
    runtime_api.hang_up_after = 600
    thread = run_loop(handler, runtime_api, 2)
    cut = runtime_api.invoke(event("/v1/completions", {"model": "tiny", "prompt": "A", "max_tokens": CONTEXT - 8,
                                                        "stream": True}))  # fmt: skip
    answer = runtime_api.wait(cut)
    assert not answer.complete and 600 <= len(answer.body) < 5000
    runtime_api.hang_up_after = None
    after = runtime_api.invoke(event("/v1/completions", {"model": "tiny", "prompt": "A", "max_tokens": 3}))
    assert split_stream(runtime_api.wait(after).body)[0]["statusCode"] == 200
    thread.join(30)
    assert not thread.is_alive() and handler.endpoint.holder.model.active == 0


def test_failures_before_and_after_the_first_byte(runtime_api: RuntimeApiServer) -> None:
    from handlers.streaming import HttpStream

    class Failing:
        def __init__(self, when: str) -> None:
            self.when = when

        def __call__(self, event: Any, context: Any) -> dict[str, Any]:
            raise AssertionError("the loop streams")

        def stream(self, event: Any, context: Any) -> HttpStream:
            if self.when == "before":
                raise RuntimeError("no model")

            def chunks() -> Iterator[bytes]:
                yield b"data: 1\n\n"
                raise ValueError("went wrong")

            return HttpStream(200, {"Content-Type": "text/event-stream"}, chunks())

    thread = run_loop(Failing("before"), runtime_api, 1)
    answer = runtime_api.wait(runtime_api.invoke({"anything": 1}))
    thread.join(10)
    assert answer.kind == "error" and answer.headers["Lambda-Runtime-Function-Error-Type"] == "Runtime.RuntimeError"
    assert json.loads(answer.body)["errorMessage"] == "no model"
    thread = run_loop(Failing("after"), runtime_api, 1)
    answer = runtime_api.wait(runtime_api.invoke({"anything": 1}))
    thread.join(10)
    assert answer.kind == "response" and answer.complete
    assert answer.headers["Trailer"] == "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body"
    assert answer.trailers["Lambda-Runtime-Function-Error-Type"] == "Runtime.ValueError"
    import base64

    assert (
        json.loads(base64.b64decode(answer.trailers["Lambda-Runtime-Function-Error-Body"]))["errorMessage"]
        == "went wrong"
    )
    assert split_stream(answer.body)[1] == b"data: 1\n\n"


def test_under_sam_local_the_loop_answers_buffered(handler: Any, runtime_api: RuntimeApiServer) -> None:
    thread = run_loop(handler, runtime_api, 1, AWS_SAM_LOCAL="true")
    answer = runtime_api.wait(runtime_api.invoke(event("/v1/chat/completions", chat(max_tokens=4, stream=True))))
    thread.join(30)
    assert "Lambda-Runtime-Function-Response-Mode" not in answer.headers
    result = json.loads(answer.body)
    assert result["statusCode"] == 200 and result["body"].endswith("data: [DONE]\n\n")


def test_the_lambda_entry_point_serves_a_generation_bundle(gen_bundle: Path) -> None:
    """handlers.lambda_function is what the managed runtime imports: behind an HTTP API, and under `sam
    local`, for every bundle. For a decoder it must be the generation handler, not the tensor API's 404."""
    environ = os.environ | {"LAMBDAFIT_MODEL_DIR": str(gen_bundle / "function" / "model"),
                            "POWERTOOLS_METRICS_DISABLED": "true", "PYTHONPATH": str(Path(__file__).parents[2])}  # fmt: skip
    code = (
        "import json, sys; import handlers.lambda_function as fn; "
        "answer = fn.lambda_handler(json.load(open(sys.argv[1])), None); "
        "print(json.dumps([answer['statusCode'], json.loads(answer['body'])['object']]))"
    )
    result = subprocess.run([sys.executable, "-c", code, str(gen_bundle / "events" / "chat-rest.json")],
                            capture_output=True, text=True, env=environ, timeout=300, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [200, "chat.completion"]
