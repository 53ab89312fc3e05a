"""A BERT-base-sized text classifier built from a config: 109 M parameters, random weights, torch only.

It stands in for the transformer a user would bring: its fp32 ONNX file alone (~440 MB) is over
Lambda's 250 MB zip limit, so `lambdafit pack ... --budget zip` must find a recipe that fits.

    python examples/transformer/model.py    # writes eval.npz (random token ids) beside this file
    lambdafit pack examples/transformer/model.py:build --name bert --budget zip --eval examples/transformer/eval.npz
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Config:
    vocab: int = 30522
    hidden: int = 768
    layers: int = 12
    heads: int = 12
    ff: int = 3072
    seq: int = 64
    classes: int = 4


class Block(nn.Module):
    def __init__(self, c: Config) -> None:
        super().__init__()
        self.heads = c.heads
        self.qkv = nn.Linear(c.hidden, 3 * c.hidden)
        self.out = nn.Linear(c.hidden, c.hidden)
        self.norm1 = nn.LayerNorm(c.hidden)
        self.ff = nn.Sequential(nn.Linear(c.hidden, c.ff), nn.GELU(), nn.Linear(c.ff, c.hidden))
        self.norm2 = nn.LayerNorm(c.hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, hidden = x.shape
        q, k, v = self.qkv(x).reshape(batch, seq, 3, self.heads, hidden // self.heads).permute(2, 0, 3, 1, 4)
        scores = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hidden // self.heads), dim=-1)
        attended = (scores @ v).transpose(1, 2).reshape(batch, seq, hidden)
        x = self.norm1(x + self.out(attended))
        return self.norm2(x + self.ff(x))


class TextClassifier(nn.Module):
    output_names = ("logits",)

    def __init__(self, c: Config) -> None:
        super().__init__()
        self.tokens = nn.Embedding(c.vocab, c.hidden)
        self.positions = nn.Parameter(torch.zeros(1, c.seq, c.hidden))
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.layers))
        self.head = nn.Linear(c.hidden, c.classes)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.tokens(input_ids) + self.positions
        for block in self.blocks:
            x = block(x)
        return self.head(x.mean(dim=1))


def build() -> tuple[nn.Module, dict[str, torch.Tensor]]:
    config = Config()
    torch.manual_seed(0)
    model = TextClassifier(config)
    for parameter in model.parameters():
        if parameter.dim() > 1:
            nn.init.normal_(parameter, std=0.02)
    return model.eval(), {"input_ids": torch.zeros(1, config.seq, dtype=torch.int64)}


def token_ids(rows: int, seed: int) -> np.ndarray:
    config = Config()
    return np.random.default_rng(seed).integers(1000, config.vocab, size=(rows, config.seq), dtype=np.int64)


if __name__ == "__main__":
    np.savez(HERE / "eval.npz", input_ids=token_ids(64, seed=1))
    np.savez(HERE / "calibration.npz", input_ids=token_ids(32, seed=2))
    params = sum(p.numel() for p in build()[0].parameters())
    print(f"transformer: {params / 1e6:.1f} M parameters; wrote eval.npz and calibration.npz")
