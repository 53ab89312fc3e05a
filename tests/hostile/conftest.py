"""Bundles of every request kind for the hostile tier: tensors, images, text (with a vocabulary), a
recurrent model with a state whose batch is axis 1 and a scalar given once, a model whose outputs
overflow, and one whose outputs are large. Each packed once per session, fp32 and slim only."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from handlers.events import RestEvent
from packager.config import PackConfig
from packager.emulator import LambdaContext
from packager.pack import pack
from tests.conftest import DIGITS, ROOT, handler_for

FACTORIES = {
    "vad": """
import torch
from torch import nn

class Vad(nn.Module):
    output_names = ("speech", "state_out")
    dynamic_axes = {"audio": {0: "batch", 1: "samples"}, "state": {1: "batch"}}

    def __init__(self):
        super().__init__()
        self.cell = nn.GRUCell(8, 16)
        self.head = nn.Linear(16, 1)

    def forward(self, audio, state, rate):
        frames = audio.unfold(1, 8, 8).mean(dim=1) * (rate / 16000.0)
        hidden = self.cell(frames, state[0])
        return torch.sigmoid(self.head(hidden)), hidden.unsqueeze(0).repeat(2, 1, 1)

def build():
    torch.manual_seed(0)
    return Vad().eval(), (torch.rand(2, 64), torch.zeros(2, 2, 16), torch.tensor(16000.0))
""",
    "overflow": """
import torch
from torch import nn

class Exp(nn.Module):
    output_names = ("logits",)

    def forward(self, x):
        return torch.exp(x * 100.0)

def build():
    return Exp().eval(), torch.zeros(2, 3)
""",
    "wide": """
import torch
from torch import nn

class Wide(nn.Module):
    def forward(self, x):
        return x.repeat(1, 2000)

def build():
    return Wide().eval(), torch.zeros(2, 4)
""",
    "text": """
import torch
from examples.transformer.model import Config, TextClassifier

def build():
    torch.manual_seed(0)
    model = TextClassifier(Config(vocab=64, hidden=32, layers=1, heads=2, ff=64, seq=16, classes=3))
    return model.eval(), {"input_ids": torch.zeros(1, 16, dtype=torch.int64)}
""",
}


def _tokenizer(folder: Path) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["the", "a", "model", "lambda", "serves", "text", "and", "images", "fast", "small", "cold", "start"]
    vocab = {"[PAD]": 0, "[UNK]": 1} | {w: i + 2 for i, w in enumerate(words)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(folder / "tokenizer.json"))
    spec = folder / "preprocess.json"
    spec.write_text(json.dumps({"kind": "text", "tokenizer": "tokenizer.json", "max_length": 16, "ids": "input_ids"}))
    return spec


@pytest.fixture(scope="session")
def hostile_bundles(
    tmp_path_factory: pytest.TempPathFactory, digits_bundle: Path, digits_files: dict[str, Path]
) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hostile")
    bundles = {"tensor": digits_bundle}
    image_spec = folder / "image.json"
    image_spec.write_text(json.dumps({"kind": "image", "size": [8, 8], "mode": "L", "scale": 1 / 255}))
    configs = {
        "image": {"model": f"{DIGITS / 'model.py'}:build", "preprocess": image_spec, "eval_data": digits_files["eval"]},
        "text": {"model": "text", "preprocess": _tokenizer(folder)},
        "vad": {"model": "vad"},
        "overflow": {"model": "overflow"},
        "wide": {"model": "wide"},
    }
    for name, options in configs.items():
        model = str(options.pop("model"))
        if model in FACTORIES:
            factory = folder / f"{model}.py"
            factory.write_text(f"import sys\nsys.path.insert(0, {str(ROOT)!r})\n" + FACTORIES[model])
            model = f"{factory}:build"
        config = PackConfig(model=model, name=name, output_dir=folder, python="3.11", recipes=("slim",), **options)  # type: ignore[arg-type]
        bundles[name] = pack(config).bundle
    return bundles


Call = Callable[..., tuple[int, dict[str, Any], str]]


@pytest.fixture(scope="session")
def call(hostile_bundles: dict[str, Path]) -> Call:
    """call(kind, body, path="/predict", headers=JSON) -> (status, JSON body, raw body), strictly parsed."""
    handlers = {name: handler_for(bundle / "function" / "model") for name, bundle in hostile_bundles.items()}

    def invoke(
        kind: str, body: Any, path: str = "/predict", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any], str]:
        text = body if isinstance(body, str | bytes) else json.dumps(body)
        event = RestEvent.build("POST", path, body=text, headers=headers or {"Content-Type": "application/json"})
        result = handlers[kind](event, LambdaContext(function_name=kind, function_version="7"))
        return result["statusCode"], strict_json(result["body"]), result["body"]

    return invoke


def strict_json(text: str) -> Any:
    """JSON as RFC 8259 has it: NaN and Infinity tokens are errors."""

    def refuse(token: str) -> None:
        raise AssertionError(f"response holds the non-JSON token {token}")

    return json.loads(text, parse_constant=refuse)
