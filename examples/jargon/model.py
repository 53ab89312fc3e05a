"""A small Llama-style decoder trained here, in minutes on CPU, on the Jargon File, and random-weight
Llama/Qwen2 decoders of 0.5 B and 1.5 B parameters for size, memory and speed.

The text is Debian's `jargon-text` package (/usr/share/doc/jargon-text/jargon.txt.gz, the Jargon File
4.4.7, public domain; `make system` installs it). Each entry becomes one chat turn, "What is WORD?"
answered by the entry's text, so the checkpoint's chat template is the format it was trained on and
perplexity on held-out entries means something.

    python examples/jargon/model.py                  # trains (minutes), writes checkpoint/ and heldout.txt here
    lambdafit pack examples/jargon/checkpoint --task text-generation --name jargon --eval examples/jargon/heldout.txt
    python examples/jargon/model.py --random 0.5b --arch qwen2 --out /tmp/qwen2-0.5b   # bench only

Everything is seeded: the split, the tokenizer and the initial weights are the same on every run.
"""

from __future__ import annotations

import argparse
import gzip
import math
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CHECKPOINT = HERE / "checkpoint"
HELDOUT = HERE / "heldout.txt"
JARGON = Path("/usr/share/doc/jargon-text/jargon.txt.gz")
SEED = 0
HELDOUT_SHARE = 0.05
SPECIAL_TOKENS = ("<|endoftext|>", "<s>", "</s>", "<pad>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>")
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
"""Phi-3's format: a turn ends with <|end|>, which is also an end-of-sequence token."""
_ENTRY = re.compile(r"^   :(?P<word>[^:\n]+):(?P<rest>.*)$", re.MULTILINE)


@dataclass(frozen=True)
class Shape:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    context: int


TRAINED = Shape(hidden=128, layers=4, heads=4, kv_heads=2, intermediate=384, vocab=2048, context=512)
"""1.05 M parameters: 800 steps of 16 x 128 tokens take about 3 minutes on one idle core."""
RANDOM = {
    # Qwen2-0.5B's and Qwen2-1.5B's shapes (0.494 B and 1.54 B parameters, tied embeddings, 151,936-entry
    # vocabulary); the jargon tokenizer uses the first 4,096 ids, the rest only pad the embedding.
    "0.5b": Shape(hidden=896, layers=24, heads=14, kv_heads=2, intermediate=4864, vocab=151_936, context=4096),
    "1.5b": Shape(hidden=1536, layers=28, heads=12, kv_heads=2, intermediate=8960, vocab=151_936, context=4096),
}


def entries(path: Path = JARGON) -> list[tuple[str, str]]:
    """(headword, text) for every entry of the Jargon File's glossary, each paragraph on one line."""
    if not path.is_file():
        raise SystemExit(f"{path} is missing: apt-get install jargon-text (make system does)")
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        text = handle.read()
    found = list(_ENTRY.finditer(text))
    result = []
    for match, following in zip(found, [*found[1:], None], strict=True):
        body = text[match.end() : following.start() if following else len(text)]
        paragraphs = [" ".join(line.strip() for line in block.splitlines()) for block in re.split(r"\n\s*\n", body)]
        words = "\n".join(p for p in paragraphs if p and "│" not in p and "─" not in p)
        if words:
            result.append((match.group("word").strip(), words))
    return result


def as_chat(word: str, text: str) -> str:
    """One entry as the chat template renders it, ended as generation ends it."""
    return f"<|user|>\nWhat is {word}?<|end|>\n<|assistant|>\n{text}<|end|>\n"


def split(seed: int = SEED) -> tuple[list[str], list[str]]:
    chats = [as_chat(word, text) for word, text in entries()]
    random.Random(seed).shuffle(chats)
    cut = int(len(chats) * HELDOUT_SHARE)
    return chats[cut:], chats[:cut]


def tokenizer(texts: list[str], vocab: int) -> Any:
    """A byte-level BPE trained on `texts`, wrapped as transformers saves it (tokenizer.json,
    tokenizer_config.json with the chat template)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer)
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="<|end|>", unk_token="<|endoftext|>", pad_token="<pad>"
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def config(shape: Shape, tok: Any, arch: str = "llama") -> Any:
    from transformers import LlamaConfig, Qwen2Config

    eos = [tok.convert_tokens_to_ids("<|end|>"), tok.convert_tokens_to_ids("</s>")]
    common = dict(
        vocab_size=shape.vocab,
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        max_position_embeddings=shape.context,
        bos_token_id=tok.bos_token_id,
        eos_token_id=eos,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    return Qwen2Config(**common) if arch == "qwen2" else LlamaConfig(**common)


def save(model: Any, tok: Any, out: Path) -> None:
    """safetensors, config.json, generation_config.json, tokenizer.json and tokenizer_config.json (with the
    chat template in it as well as in chat_template.jinja, for readers of either transformers 4 or 5)."""
    import json

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    path = out / "tokenizer_config.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["chat_template"] = CHAT_TEMPLATE
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def random_decoder(size: str, arch: str, out: Path) -> None:
    """A decoder of `size` with random weights and the jargon tokenizer: for size, memory and speed only."""
    import torch
    from transformers import AutoModelForCausalLM

    train_texts, _ = split()
    shape = RANDOM[size]
    tok = tokenizer(train_texts, TRAINED.vocab)
    torch.manual_seed(SEED)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config(shape, tok, arch), dtype=torch.float32)
    model = model.to_empty(device="cpu")
    model.tie_weights()  # to_empty gives every parameter its own storage, the tied head included
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" in name:
                parameter.fill_(1.0)
            else:
                parameter.normal_(0.0, 0.02)
    model.eval()
    save(model, tok, out)
    count = sum(p.numel() for p in model.parameters())
    print(f"{arch} {size}: {count / 1e9:.3f} B parameters -> {out}")


def train(steps: int = 800, out: Path = CHECKPOINT, heldout: Path = HELDOUT) -> float:
    """Train TRAINED on the entries for `steps` steps (one thread: on a shared machine more threads only
    wait for each other); returns the held-out perplexity."""
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    train_texts, heldout_texts = split()
    tok = tokenizer(train_texts, TRAINED.vocab)
    model = LlamaForCausalLM(config(TRAINED, tok))
    stream = torch.tensor([i for text in train_texts for i in tok.encode(text)], dtype=torch.long)
    held = torch.tensor([i for text in heldout_texts for i in tok.encode(text)], dtype=torch.long)
    window, batch = 128, 16
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps, pct_start=0.05)
    generator = torch.Generator().manual_seed(SEED)
    start = time.monotonic()
    model.train()
    for step in range(1, steps + 1):
        starts = torch.randint(0, len(stream) - window - 1, (batch,), generator=generator)
        ids = torch.stack([stream[s : s + window] for s in starts.tolist()])
        loss = model(input_ids=ids, labels=ids).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % 50 == 0:
            print(f"step {step}: loss {loss.item():.3f} ({time.monotonic() - start:.0f} s)", flush=True)
    model.eval()
    perplexity = evaluate(model, held, window)
    count = sum(p.numel() for p in model.parameters())
    print(
        f"{count / 1e6:.2f} M parameters, {steps} steps, {steps * batch * window} tokens in "
        f"{time.monotonic() - start:.0f} s; held-out perplexity {perplexity:.1f} on {len(held)} tokens"
    )
    save(model, tok, out)
    heldout.write_text("".join(heldout_texts), encoding="utf-8")
    return perplexity


def evaluate(model: Any, ids: Any, window: int) -> float:
    import torch

    losses = []
    with torch.no_grad():
        for start in range(0, len(ids) - window, window):
            chunk = ids[start : start + window].unsqueeze(0)
            losses.append(model(input_ids=chunk, labels=chunk).loss.item())
    return math.exp(sum(losses) / len(losses))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=800, help="training steps of 16 x 128 tokens")
    parser.add_argument("--random", choices=sorted(RANDOM), help="write a random-weight decoder of this size instead")
    parser.add_argument("--arch", choices=("llama", "qwen2"), default="llama")
    parser.add_argument("--out", type=Path, help="checkpoint folder")
    args = parser.parse_args()
    if args.random:
        random_decoder(args.random, args.arch, args.out or HERE / f"{args.arch}-{args.random}")
    else:
        train(args.steps, args.out or CHECKPOINT)


if __name__ == "__main__":
    main()
