"""Shared fixtures: API Gateway events from tests/events/, and one packed digits bundle per session."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
EVENTS = Path(__file__).resolve().parent / "events"
DIGITS = ROOT / "examples" / "digits"


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def matmul_model(path: Path, weights: Any) -> Path:
    """A one-MatMul ONNX classifier: x [batch, features] @ weights [features, classes] -> logits."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    features, classes = weights.shape
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["logits"])],
        "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", features])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
        [numpy_helper.from_array(weights, "w")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def handler_for(model_dir: Path, **settings: Any) -> Any:
    """The bundle's real Lambda handler over `model_dir`, with these runtime settings."""
    from handlers.app import make_handler
    from handlers.contract import RuntimeSettings

    return make_handler(RuntimeSettings(model_dir=model_dir, **settings))


@pytest.fixture(scope="session")
def digits_files() -> dict[str, Path]:
    """The trained example: `python examples/digits/model.py` writes these (make does it first)."""
    files = {"weights": DIGITS / "weights.pt", "eval": DIGITS / "eval.npz", "train": DIGITS / "train.npz"}
    if not all(path.is_file() for path in files.values()):
        import runpy

        runpy.run_path(str(DIGITS / "model.py"), run_name="__main__")
    return files


@pytest.fixture(scope="session")
def digits_bundle(tmp_path_factory: pytest.TempPathFactory, digits_files: dict[str, Path]) -> Path:
    from packager.config import PackConfig
    from packager.pack import pack

    out = tmp_path_factory.mktemp("bundles")
    config = PackConfig(
        model=f"{DIGITS / 'model.py'}:build",
        name="digits",
        output_dir=out,
        eval_data=digits_files["eval"],
        calibration_data=digits_files["train"],
    )
    return pack(config).bundle


@pytest.fixture(scope="session")
def digits_server(digits_bundle: Path) -> Iterator[str]:
    """`lambdafit serve` on an ephemeral loopback port, in a thread: yields its base URL."""
    from packager.emulator import serve_bundle

    server = serve_bundle(digits_bundle, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


DECODER_CONTEXT = 256


@pytest.fixture(scope="session")
def decoder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 0.2 M-parameter Llama with random weights, the jargon tokenizer and chat template; and held-out text."""
    import torch
    from transformers import LlamaForCausalLM

    from examples.jargon.model import Shape, config, save, split, tokenizer

    folder = tmp_path_factory.mktemp("decoder")
    train, held = split()
    tok = tokenizer(train, 2048)
    torch.manual_seed(0)
    shape = Shape(hidden=64, layers=2, heads=4, kv_heads=2, intermediate=128, vocab=2048, context=DECODER_CONTEXT)
    save(LlamaForCausalLM(config(shape, tok)), tok, folder / "checkpoint")
    (folder / "heldout.txt").write_text("".join(held[:20]), encoding="utf-8")
    return folder / "checkpoint", folder / "heldout.txt"


def pack_decoder(decoder: tuple[Path, Path], output: Path, **changes: Any) -> Path:
    """The decoder packed for text generation (fp32 and int4 candidates), as `lambdafit pack --task text-generation`."""
    from packager.config import PackConfig, resolve
    from packager.pack import pack

    checkpoint, heldout = decoder
    values: dict[str, Any] = {
        "model": str(checkpoint), "name": "tiny", "task": "text-generation", "recipes": ("fp32", "int4"),
        "eval_data": heldout, "max_drop": 0.5, "output_dir": output,
        "python": resolve(None, "LAMBDAFIT_PYTHON", "3.11"),
    }  # fmt: skip
    return pack(PackConfig(**(values | changes))).bundle


@pytest.fixture(scope="session")
def gen_bundle(decoder: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The decoder as an image behind a streaming REST API."""
    return pack_decoder(decoder, tmp_path_factory.mktemp("gen-bundles"))


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """One request over loopback; returns status and the JSON body."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")  # tests/unit/test_metrics.py turns them back on
