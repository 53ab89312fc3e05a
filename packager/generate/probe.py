"""Run in a fresh process by packager.generate.measure: one candidate's numbers, as the handler loads it
(onnxruntime-genai and numpy only, no torch).

    python -m packager.generate.probe MODEL_DIR TEXT_FILE ARGMAX.npy [--window 512] [--max-tokens 8192]
        [--prompt-tokens 32 | --prompt-ids IDS.json] [--new-tokens 64,256] [--reps 3] [--threads N]
        ->  one JSON line

- perplexity: the text's tokens in windows of `window`, each scored in one forward pass from an empty cache;
  the argmax at every scored position goes to ARGMAX.npy (the greedy next token, compared with fp32's);
- speed: greedy generation of exactly `new_tokens` after a `prompt_tokens` prompt, `reps` times after a
  warm-up: time to first token (prompt pass and first token) and tokens per second after it;
- memory: one more generation with the KV cache at the full context, then this process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from packager.probe import peak_rss_mb


def load(model_dir: Path, threads: int | None) -> tuple[Any, Any, float]:
    import onnxruntime_genai as og

    folder = model_dir
    if threads:
        folder = Path(tempfile.mkdtemp(prefix="lambdafit-threads-"))
        for path in model_dir.iterdir():
            (folder / path.name).symlink_to(path.resolve())
        config = json.loads((model_dir / "genai_config.json").read_text(encoding="utf-8"))
        options = config["model"]["decoder"].setdefault("session_options", {})
        options["intra_op_num_threads"] = threads
        options["inter_op_num_threads"] = 1
        (folder / "genai_config.json").unlink()
        (folder / "genai_config.json").write_text(json.dumps(config), encoding="utf-8")
    start = time.perf_counter()
    config = og.Config(str(folder))
    config.clear_providers()
    model = og.Model(config)
    tokenizer = og.Tokenizer(model)
    elapsed = (time.perf_counter() - start) * 1000
    if folder != model_dir:
        shutil.rmtree(folder, ignore_errors=True)
    return model, tokenizer, elapsed


def perplexity(model: Any, ids: Any, window: int, argmax_path: Path) -> tuple[float, int]:
    """Summed negative log-likelihood over the scored tokens, and their count."""
    import numpy as np
    import onnxruntime_genai as og

    nll, count, picks = 0.0, 0, []
    for start in range(0, len(ids) - 1, window):
        chunk = ids[start : start + window + 1]
        if len(chunk) < 2:
            break
        inputs, targets = chunk[:-1], chunk[1:]
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=len(inputs) + 1)
        generator = og.Generator(model, params)
        generator.append_tokens(inputs)
        logits = generator.get_output("logits")[0].astype(np.float64)
        del generator
        top = logits.max(axis=-1, keepdims=True)
        log_probs = logits - top - np.log(np.exp(logits - top).sum(axis=-1, keepdims=True))
        nll -= float(log_probs[np.arange(len(targets)), targets].sum())
        count += len(targets)
        picks.append(logits.argmax(axis=-1).astype(np.int32))
    np.save(argmax_path, np.concatenate(picks) if picks else np.zeros(0, np.int32))
    return nll, count


def generate(model: Any, prompt: Any, new_tokens: int, max_length: int | None = None) -> tuple[float, float]:
    """Seconds to the first token, and tokens per second after it, generating exactly `new_tokens`."""
    import onnxruntime_genai as og

    params = og.GeneratorParams(model)
    total = len(prompt) + new_tokens
    params.set_search_options(do_sample=False, max_length=max_length or total, min_length=total)
    start = time.perf_counter()
    generator = og.Generator(model, params)
    generator.append_tokens(prompt)
    generator.generate_next_token()
    first = time.perf_counter()
    for _ in range(new_tokens - 1):
        generator.generate_next_token()
    end = time.perf_counter()
    return first - start, (new_tokens - 1) / max(end - first, 1e-9)


def main() -> None:
    import numpy as np

    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("text", type=Path)
    parser.add_argument("argmax", type=Path)
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--max-tokens", type=int, default=8192, help="held-out tokens to score (0: none)")
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--prompt-ids", type=Path, help="a JSON list of token ids to prompt with instead")
    parser.add_argument("--new-tokens", default="64", help="comma list: generation lengths to time")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    model, tokenizer, load_ms = load(args.model_dir, args.threads or None)
    context = int(json.loads((args.model_dir / "genai_config.json").read_text())["model"]["context_length"])
    encoded = tokenizer.encode(args.text.read_text(encoding="utf-8"))
    window = max(1, min(args.window, context - 1))
    nll, count = perplexity(model, encoded[: args.max_tokens + 1] if args.max_tokens else encoded[:0], window,
                            args.argmax)  # fmt: skip
    if args.prompt_ids:
        prompt = np.asarray(json.loads(args.prompt_ids.read_text()), dtype=np.int32)
    else:
        prompt = encoded[: args.prompt_tokens]
    speed = {}
    for wanted in (int(n) for n in args.new_tokens.split(",")):
        new_tokens = max(2, min(wanted, context - len(prompt)))
        generate(model, prompt, min(new_tokens, 8))
        runs = [generate(model, prompt, new_tokens) for _ in range(args.reps)]
        speed[str(wanted)] = {
            "new_tokens": new_tokens,
            "ttft_ms": statistics.median(r[0] for r in runs) * 1000,
            "tokens_per_s": statistics.median(r[1] for r in runs),
            "ms_per_token": [1000 / r[1] for r in runs],
        }
    generate(model, prompt, 4, max_length=context)
    first = next(iter(speed.values()))
    print(
        json.dumps(
            {
                "load_ms": load_ms,
                "nll": nll,
                "tokens": count,
                "ttft_ms": first["ttft_ms"],
                "tokens_per_s": first["tokens_per_s"],
                "ms_per_token": first["ms_per_token"],
                "speed": speed,
                "prompt_tokens": len(prompt),
                "context_length": context,
                "peak_rss_mb": peak_rss_mb(),
                "seconds": time.perf_counter() - started,
            }
        )
    )


if __name__ == "__main__":
    main()
