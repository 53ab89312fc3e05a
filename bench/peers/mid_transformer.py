"""A transformer classifier with three layers (about 31 M parameters, mostly the embedding): a model
of 10-20 ms a call on this machine, for bench/handler.py's second model."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from examples.transformer.model import Config, TextClassifier


def build() -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = TextClassifier(Config(layers=3))
    return model.eval(), {"input_ids": torch.zeros(1, Config().seq, dtype=torch.int64)}
