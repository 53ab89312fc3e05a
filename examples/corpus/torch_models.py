"""torch factories for the corpus: the libraries' own architectures with random weights (seeded).

Each function is what a user would write for `lambdafit pack file.py:function`: it returns the module
and an example input, plus options only where the graph cannot tell (a seq-first RNN's batch axis).
transformers models are built from small configs, so nothing is downloaded from the Hugging Face hub.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

SEED = 0
Factory = tuple[nn.Module, Any] | tuple[nn.Module, Any, dict[str, Any]]


def _tokens(rows: int = 2, seq: int = 16, vocab: int = 1000) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(SEED)
    ids = torch.randint(5, vocab, (rows, seq), generator=generator)
    return {"input_ids": ids, "attention_mask": torch.ones(rows, seq, dtype=torch.long)}


def bert() -> Factory:
    """BertForSequenceClassification, 2 layers of 64: three int64 [batch, sequence] inputs, 3 classes."""
    import transformers

    torch.manual_seed(SEED)
    config = transformers.BertConfig(
        vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
        max_position_embeddings=128, num_labels=3, id2label={0: "negative", 1: "neutral", 2: "positive"},
    )  # fmt: skip
    model = transformers.BertForSequenceClassification(config)
    example = _tokens() | {"token_type_ids": torch.zeros(2, 16, dtype=torch.long)}
    return model, example, {"labels": ["negative", "neutral", "positive"]}


def distilbert() -> Factory:
    """DistilBertForSequenceClassification: no token_type_ids."""
    import transformers

    torch.manual_seed(SEED)
    config = transformers.DistilBertConfig(
        vocab_size=1000, dim=64, n_layers=2, n_heads=4, hidden_dim=128, max_position_embeddings=128, num_labels=2
    )
    return transformers.DistilBertForSequenceClassification(config), _tokens()


def gpt2() -> Factory:
    """GPT2LMHeadModel without a cache: logits [batch, sequence, vocab] (a dynamic non-batch output axis)."""
    import transformers

    torch.manual_seed(SEED)
    config = transformers.GPT2Config(vocab_size=1000, n_embd=64, n_layer=2, n_head=4, n_positions=128, use_cache=False)
    return transformers.GPT2LMHeadModel(config), _tokens()


def vit() -> Factory:
    """ViTForImageClassification on 64x64 images, 10 classes."""
    import transformers

    torch.manual_seed(SEED)
    config = transformers.ViTConfig(
        image_size=64, patch_size=16, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=128, num_labels=10,
    )  # fmt: skip
    return transformers.ViTForImageClassification(config), {"pixel_values": torch.randn(2, 3, 64, 64)}


def yolos() -> Factory:
    """YolosForObjectDetection (a ViT detector): logits [batch, 20, 6] and pred_boxes [batch, 20, 4]."""
    import transformers

    torch.manual_seed(SEED)
    config = transformers.YolosConfig(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
        image_size=[128, 128], num_detection_tokens=20, num_labels=5,
    )  # fmt: skip
    return transformers.YolosForObjectDetection(config), {"pixel_values": torch.randn(2, 3, 128, 128)}


class LSTMTagger(nn.Module):
    """A seq-first 2-layer LSTM with its state as inputs and outputs: x [seq, batch, 40], h0/c0 [2, batch, 64]."""

    output_names = ("y", "hn", "cn")

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(40, 64, num_layers=2)
        self.head = nn.Linear(64, 10)

    def forward(
        self, x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        y, (h, c) = self.rnn(x, (h0, c0))
        return self.head(y), h, c


def lstm_state() -> Factory:
    torch.manual_seed(SEED)
    example = (torch.randn(7, 3, 40), torch.zeros(2, 3, 64), torch.zeros(2, 3, 64))
    axes = {"x": {0: "sequence", 1: "batch"}, "h0": {1: "batch"}, "c0": {1: "batch"}}
    return LSTMTagger(), example, {"dynamic_axes": axes}


class GRULanguageModel(nn.Module):
    """Token ids [batch, seq] and a GRU state [1, batch, 48]: next-token logits and the new state."""

    output_names = ("logits", "hn")

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(1000, 32)
        self.rnn = nn.GRU(32, 48, batch_first=True)
        self.head = nn.Linear(48, 1000)

    def forward(self, tokens: torch.Tensor, h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, h = self.rnn(self.embed(tokens), h0)
        return self.head(y), h


def gru_state() -> Factory:
    torch.manual_seed(SEED)
    tokens = torch.randint(0, 1000, (2, 5), generator=torch.Generator().manual_seed(SEED))
    example = (tokens, torch.zeros(1, 2, 48))
    return GRULanguageModel(), example, {"dynamic_axes": {"tokens": {0: "batch", 1: "sequence"}, "h0": {1: "batch"}}}


class SeqFirstTransformer(nn.Module):
    """torch.nn.Transformer as it comes (batch_first=False): src [S, batch, 64], tgt [T, batch, 64]."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Transformer(
            d_model=64, nhead=4, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=128, dropout=0.0
        )

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        return self.inner(src, tgt)


def seq_first_transformer() -> Factory:
    torch.manual_seed(SEED)
    example = (torch.randn(10, 2, 64), torch.randn(6, 2, 64))
    axes = {"src": {0: "src_len", 1: "batch"}, "tgt": {0: "tgt_len", 1: "batch"}}
    return SeqFirstTransformer(), example, {"dynamic_axes": axes}


class Calibrated(nn.Module):
    """An MLP whose softmax takes a 0-d temperature input (a scalar a request may leave out)."""

    output_names = ("probabilities",)

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 5))

    def forward(self, x: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x) / temperature, dim=-1)


def scalar_temperature() -> Factory:
    torch.manual_seed(SEED)
    return Calibrated(), (torch.randn(4, 16), torch.tensor(1.5))
