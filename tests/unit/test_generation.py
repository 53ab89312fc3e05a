"""The text-generation handler's parts without a model: request checks, the decoding loop over a fake
onnxruntime-genai (stop strings, end-of-sequence, max_tokens, deadline, closing), the wire formats, the
manifest's generation section and the route table it selects."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from handlers.errors import NotFoundError
from handlers.generation import FinishReason, Generation, GenerationRequest, LanguageModel, Sampling
from handlers.manifest import GenerationSpec, Manifest, Task
from handlers.openai_api import InvalidRequestError, chat_messages, error_body, parameters, plan
from handlers.routes import GENERATION_ROUTES, ROUTES, RouteTable, routes_for
from handlers.streaming import DELIMITER, PRELUDE_CONTENT_TYPE, HttpStream, prelude, sse

EOS = 99
PIECES = {1: "Hello", 2: ",", 3: " wor", 4: "ld", 5: "!", 6: " STO", 7: "P", 8: " more"}


class FakeGenerator:
    """Emits a scripted token sequence; counts how many are alive."""

    alive = 0

    def __init__(self, model: FakeModel, params: FakeParams) -> None:
        self.script = list(model.script)
        self.max_length = params.options["max_length"]
        self.length = 0
        self.next = 0
        FakeGenerator.alive += 1

    def __del__(self) -> None:
        FakeGenerator.alive -= 1

    def append_tokens(self, ids: Any) -> None:
        self.length += len(ids)

    def generate_next_token(self) -> None:
        self.next = self.script.pop(0) if self.script else 1
        self.length += 1

    def get_next_tokens(self) -> np.ndarray:
        return np.array([self.next], dtype=np.int32)

    def is_done(self) -> bool:
        return self.length >= self.max_length


class FakeParams:
    def __init__(self, model: Any) -> None:
        self.options: dict[str, Any] = {}

    def set_search_options(self, **options: Any) -> None:
        self.options = options


class FakeStream:
    def decode(self, token: int) -> str:
        return PIECES[token]


class FakeTokenizer:
    def create_stream(self) -> FakeStream:
        return FakeStream()

    def encode(self, text: str) -> np.ndarray:
        return np.arange(len(text.split()), dtype=np.int32)


class FakeModel:
    def __init__(self, script: list[int]) -> None:
        self.script = script


@pytest.fixture(autouse=True)
def fake_genai(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("onnxruntime_genai")
    module.Generator = FakeGenerator  # type: ignore[attr-defined]
    module.GeneratorParams = FakeParams  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "onnxruntime_genai", module)


def spec(context: int = 64) -> GenerationSpec:
    return GenerationSpec(context_length=context, files={"model.onnx": "0" * 64}, eos_token_ids=(EOS,))


def manifest(context: int = 64) -> Manifest:
    generation = spec(context)
    return Manifest("tiny", generation.digest[:12], generation.digest, (), (), task=Task.TEXT_GENERATION,
                    generation=generation)  # fmt: skip


def language_model(script: list[int], context: int = 64) -> LanguageModel:
    loaded = manifest(context)
    assert loaded.generation is not None
    return LanguageModel(loaded, loaded.generation, FakeModel(script), FakeTokenizer(), 128, frozenset({EOS}))


def run(script: list[int], max_tokens: int = 20, stop: tuple[str, ...] = (), **kw: Any) -> tuple[list[str], Generation]:
    model = language_model(script)
    generation = model.generate(GenerationRequest(np.arange(3, dtype=np.int32), max_tokens, Sampling(), stop, **kw))
    pieces = list(generation)
    assert model.active == 0
    return pieces, generation


def test_text_streams_token_by_token_and_ends_at_eos() -> None:
    pieces, generation = run([1, 2, 3, 4, EOS, 5])
    assert pieces == ["Hello", ",", " wor", "ld"]
    assert generation.finish_reason is FinishReason.STOP and generation.completion_tokens == 5


def test_max_tokens_ends_with_length() -> None:
    pieces, generation = run([1, 2, 3, 4, 5], max_tokens=3)
    assert "".join(pieces) == "Hello, wor" and generation.finish_reason is FinishReason.LENGTH


def test_a_stop_string_is_cut_out_even_across_tokens_and_its_prefix_is_held_back() -> None:
    pieces, generation = run([1, 3, 4, 6, 7, 8], stop=("STOP",))
    assert "".join(pieces) == "Hello world " and generation.finish_reason is FinishReason.STOP
    assert generation.completion_tokens == 5
    pieces, generation = run([1, 3, 4, 6, 5], max_tokens=5, stop=("STOP",))
    assert "".join(pieces) == "Hello world STO!"  # " STO" waited for the next token, which was not "P"


def test_the_deadline_stops_generation_with_length() -> None:
    pieces, generation = run([1, 2, 3], deadline=0.0)
    assert pieces == [] and generation.finish_reason is FinishReason.LENGTH


def test_closing_mid_way_frees_the_generator() -> None:
    model = language_model([1, 2, 3, 4, 5])
    generation = model.generate(GenerationRequest(np.arange(3, dtype=np.int32), 20))
    assert next(generation) == "Hello" and model.active == 1
    generation.close()
    generation.close()
    assert model.active == 0 and FakeGenerator.alive == 0 and generation.finish_reason is FinishReason.LENGTH


def test_sampling_maps_to_search_options() -> None:
    assert Sampling(temperature=0.0).search_options(100) == {"repetition_penalty": 1.0, "do_sample": False}
    options = Sampling(temperature=0.7, top_p=0.9, top_k=500, seed=7).search_options(100)
    assert options == {"repetition_penalty": 1.0, "do_sample": True, "temperature": 0.7, "top_p": 0.9,
                       "top_k": 100, "random_seed": 7}  # fmt: skip


def body(**changes: Any) -> dict[str, Any]:
    return {"model": "tiny", "messages": [{"role": "user", "content": "hi"}]} | changes


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": -2}, "top_k"),
        ({"top_k": 2.5}, "top_k"),
        ({"repetition_penalty": 0}, "repetition_penalty"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_completion_tokens": -1}, "max_completion_tokens"),
        ({"seed": "x"}, "seed"),
        ({"stop": ["a"] * 9}, "stop"),
        ({"stop": [""]}, "stop"),
        ({"stream": "yes"}, "stream"),
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"tools": [{"type": "function"}]}, "tools"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"model": None}, "model"),
    ],
)
def test_invalid_parameters_are_400s_naming_the_parameter(changes: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parameters(body(**changes), "tiny")
    assert caught.value.status == 400 and caught.value.param == param
    assert error_body(caught.value)["error"]["type"] == "invalid_request_error"


def test_valid_parameters_and_an_unknown_model() -> None:
    got = parameters(body(temperature=0, top_k=-1, stop="\n", stream=True, stream_options={"include_usage": True},
                          max_completion_tokens=5, user="someone"), "tiny")  # fmt: skip
    assert got.sampling.greedy and got.sampling.top_k == 0 and got.stop == ("\n",) and got.stream and got.include_usage
    assert got.max_tokens == 5
    with pytest.raises(NotFoundError) as caught:
        parameters(body(model="gpt-4o"), "tiny")
    assert caught.value.code == "model_not_found" and error_body(caught.value)["error"]["code"] == "model_not_found"


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([], "messages"),
        ([{"role": "tool", "content": "x"}], "messages[0].role"),
        ([{"role": "wizard", "content": "x"}], "messages[0].role"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}], "messages[0].content"),
        ([{"role": "user", "content": None}], "messages[0].content"),
        (["hello"], "messages[0]"),
    ],
)
def test_messages_are_checked(messages: list[Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        chat_messages({"messages": messages})
    assert caught.value.param == param


def test_messages_take_text_parts_and_developer_is_system() -> None:
    messages = [{"role": "developer", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]  # fmt: skip
    assert chat_messages({"messages": messages}) == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "ab"},
    ]


def test_the_context_bounds_prompt_and_max_tokens() -> None:
    model = language_model([], context=16)
    prompt = np.arange(10, dtype=np.int32)
    assert plan(prompt, parameters(body(), "tiny"), model, None).max_tokens == 6
    assert plan(prompt, parameters(body(max_tokens=6), "tiny"), model, None).max_tokens == 6
    with pytest.raises(InvalidRequestError, match="you requested 17") as caught:
        plan(prompt, parameters(body(max_tokens=7), "tiny"), model, None)
    assert caught.value.code == "context_length_exceeded" and caught.value.param == "max_tokens"
    with pytest.raises(InvalidRequestError, match="the prompt has 16") as caught:
        plan(np.arange(16, dtype=np.int32), parameters(body(), "tiny"), model, None)
    assert caught.value.code == "context_length_exceeded"


def test_wire_formats() -> None:
    assert sse({"a": "é"}) == 'data: {"a":"é"}\n\n'
    assert prelude(200, {"Content-Type": "text/event-stream"}) == (
        b'{"statusCode":200,"headers":{"Content-Type":"text/event-stream"}}' + b"\x00" * 8
    )
    assert bytes(8) == DELIMITER and PRELUDE_CONTENT_TYPE == "application/vnd.awslambda.http-integration-response"
    stream = HttpStream.from_result({"statusCode": 404, "headers": {"Content-Type": "application/json"},
                                     "body": "e30=", "isBase64Encoded": True, "cookies": ["a=b"]})  # fmt: skip
    assert list(stream.chunks) == [b"{}"]
    assert (
        stream.prelude()
        == b'{"statusCode":404,"headers":{"Content-Type":"application/json"},"cookies":["a=b"]}' + bytes(8)
    )


def test_a_stream_closed_before_it_started_still_closes_its_producer() -> None:
    from handlers.events import Response
    from handlers.streaming import StreamingResponse, Watched

    closed: list[str] = []

    def produce() -> Iterator[str]:
        try:
            yield "x"
        finally:
            closed.append("producer")

    chunks = produce()
    next(chunks)
    stream = HttpStream.from_response(StreamingResponse(200, "", "text/event-stream", chunks=chunks))
    stream.chunks = Watched(stream.chunks, lambda: closed.append("metrics"))
    stream.close()
    stream.close()
    assert closed == ["producer", "metrics"]
    assert HttpStream.from_response(Response(200, "{}")).prelude().startswith(b'{"statusCode":200')


def test_manifest_round_trip_and_route_table() -> None:
    loaded = manifest()
    assert Manifest.from_dict(json.loads(loaded.dumps())) == loaded
    assert routes_for(Task.TEXT_GENERATION) is GENERATION_ROUTES and routes_for(Task.GENERIC) is ROUTES
    table = RouteTable(GENERATION_ROUTES)
    assert table.match("POST", "/v1/chat/completions") is not None
    match = table.match("GET", "/v1/models/tiny")
    assert match is not None and match.params == {"model": "tiny"}
    assert table.allowed("/v1/completions") == ("POST",) and table.match("POST", "/predict") is None
    with pytest.raises(Exception, match="generation section"):
        Manifest("x", "v", "0", (), (), task=Task.TEXT_GENERATION)


def test_bundle_task_reads_only_the_task(tmp_path: Path) -> None:
    from handlers.manifest import bundle_task

    assert bundle_task(tmp_path) is None
    (tmp_path / "manifest.json").write_text(manifest().dumps())
    assert bundle_task(tmp_path) is Task.TEXT_GENERATION
