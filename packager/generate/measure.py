"""A generation candidate measured in a fresh process (packager.generate.probe), against fp32.

Quality is 1 - the relative perplexity increase over fp32 on the held-out text (fp32 scores 1.0; +10%
perplexity scores 0.90), so `--max-drop 0.1` allows perplexity 10% above fp32's. Latency is milliseconds
per generated token (the fitter's "not slower than fp32"); time to first token rides along.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import packager
from packager.errors import LambdafitError
from packager.measure import Measurement, compressed_size

QUALITY_KIND = "1 - relative perplexity increase vs fp32"
PROBE_TIMEOUT_S = 3 * 3600


@dataclass(frozen=True)
class EvalOptions:
    """How much the probe measures: tokens of held-out text, and the generation it times."""

    max_tokens: int = 8192
    window: int = 512
    prompt_tokens: int = 32
    new_tokens: int = 64
    reps: int = 3
    threads: int = 0
    """onnxruntime's intra-op threads; 0 keeps the bundle's default (its cores)."""


@dataclass(frozen=True, kw_only=True)
class GenerationMeasurement(Measurement):
    perplexity: float
    agreement: float
    """Share of held-out positions where the greedy next token equals fp32's."""
    ttft_ms: float
    tokens_per_s: float
    load_ms: float
    eval_tokens: int


@dataclass(frozen=True)
class ProbeResult:
    numbers: dict[str, Any]
    argmax: Any
    """numpy int32: the greedy next token at every scored position."""

    @property
    def perplexity(self) -> float:
        return math.exp(self.numbers["nll"] / max(1, self.numbers["tokens"]))


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.iterdir() if path.is_file())


def probe(folder: Path, text: Path, options: EvalOptions, work: Path) -> ProbeResult:
    argmax = work / f"{folder.name}-argmax.npy"
    command = [
        sys.executable, "-m", "packager.generate.probe", str(folder), str(text), str(argmax),
        "--window", str(options.window), "--max-tokens", str(options.max_tokens),
        "--prompt-tokens", str(options.prompt_tokens), "--new-tokens", str(options.new_tokens),
        "--reps", str(options.reps), "--threads", str(options.threads),
    ]  # fmt: skip
    root = str(Path(packager.__file__).resolve().parent.parent)
    env = os.environ | {"PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    try:
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=PROBE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise LambdafitError(f"measuring {folder.name} took over {PROBE_TIMEOUT_S} s") from exc
    if result.returncode != 0:
        raise LambdafitError(f"the model failed in a fresh onnxruntime-genai process: {result.stderr.strip()[-300:]}")
    numbers = json.loads(result.stdout.strip().splitlines()[-1])
    if not numbers["tokens"]:
        raise LambdafitError(f"{text} gave no tokens to score: give a longer --eval text")
    return ProbeResult(numbers, np.load(argmax))


def measurement(folder: Path, result: ProbeResult, reference: ProbeResult) -> GenerationMeasurement:
    n = result.numbers
    ratio = result.perplexity / reference.perplexity
    per_token = sorted(n["ms_per_token"])
    same = min(len(result.argmax), len(reference.argmax))
    agreement = float(np.mean(result.argmax[:same] == reference.argmax[:same])) if same else 0.0
    ms = 1000 / n["tokens_per_s"]
    return GenerationMeasurement(
        size_bytes=folder_bytes(folder),
        compressed_bytes=sum(compressed_size(path) for path in folder.iterdir() if path.is_file()),
        quality=2.0 - ratio,
        quality_kind=QUALITY_KIND,
        p50_ms=ms,
        p95_ms=per_token[-1],
        p50_batch8_ms=n["ttft_ms"],
        p95_batch8_ms=n["ttft_ms"],
        init_ms=n["load_ms"],
        peak_rss_mb=n["peak_rss_mb"],
        perplexity=result.perplexity,
        agreement=agreement,
        ttft_ms=n["ttft_ms"],
        tokens_per_s=n["tokens_per_s"],
        load_ms=n["load_ms"],
        eval_tokens=n["tokens"],
    )


def sample_text(folder: Path, path: Path, samples: int = 8, tokens: int = 256, seed: int = 0) -> Path:
    """Text the fp32 model itself writes (sampled at temperature 1 from its start token), for when no
    held-out text is given: quality is then fidelity to fp32 on its own distribution."""
    import onnxruntime_genai as og

    config = og.Config(str(folder))
    config.clear_providers()
    model = og.Model(config)
    tokenizer = og.Tokenizer(model)
    start = np.array([tokenizer.bos_token_id], dtype=np.int32)
    texts = []
    for number in range(samples):
        params = og.GeneratorParams(model)
        params.set_search_options(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, random_seed=seed + number,
                                  max_length=min(tokens, 4096))  # fmt: skip
        generator = og.Generator(model, params)
        generator.append_tokens(start)
        while not generator.is_done():
            generator.generate_next_token()
        texts.append(tokenizer.decode(generator.get_sequence(0)[1:]))
    path.write_text("\n".join(texts), encoding="utf-8")
    return path
