"""Decoder families beyond Llama, packed for real and answering a chat completion: Qwen2, Phi-3 and Mistral
(tiny random-weight checkpoints with grouped-query attention). Minutes: two builder runs each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from handlers.events import RestEvent

pytestmark = pytest.mark.slow


def checkpoint(family: str, folder: Path) -> Path:
    import torch
    from transformers import (
        MistralConfig,
        MistralForCausalLM,
        Phi3Config,
        Phi3ForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    from examples.jargon.model import save, split, tokenizer

    tok = tokenizer(split()[0], 2048)
    common = dict(vocab_size=2048, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=256, bos_token_id=tok.bos_token_id,
                  eos_token_id=tok.convert_tokens_to_ids("<|end|>"), pad_token_id=tok.pad_token_id)  # fmt: skip
    torch.manual_seed(0)
    model = {
        "qwen2": lambda: Qwen2ForCausalLM(Qwen2Config(**common)),
        "phi3": lambda: Phi3ForCausalLM(Phi3Config(**common, original_max_position_embeddings=256)),
        "mistral": lambda: MistralForCausalLM(MistralConfig(**common)),
    }[family]()
    save(model, tok, folder)
    return folder


@pytest.mark.parametrize("family", ["qwen2", "phi3", "mistral"])
def test_family_packs_and_chats(family: str, tmp_path: Path) -> None:
    from packager.config import PackConfig, resolve
    from packager.pack import pack
    from tests.conftest import handler_for

    folder = checkpoint(family, tmp_path / family)
    config = PackConfig(model=str(folder), name=family, recipes=("int4",), max_drop=0.5, allow_slower=True,
                        output_dir=tmp_path / "build", python=resolve(None, "LAMBDAFIT_PYTHON", "3.11"))  # fmt: skip
    result = pack(config)  # no --task: the folder's ForCausalLM architecture says text generation
    assert {v.candidate.recipe for v in result.fit.verdicts} == {"fp32", "int4"}
    handler = handler_for(result.bundle / "function" / "model")
    body = {"model": family, "messages": [{"role": "user", "content": "What is a kludge?"}], "max_tokens": 6,
            "temperature": 0}  # fmt: skip
    answer = handler(RestEvent.build("POST", "/v1/chat/completions", body=json.dumps(body)), None)
    assert answer["statusCode"] == 200, answer["body"]
    assert json.loads(answer["body"])["usage"]["completion_tokens"] <= 6
