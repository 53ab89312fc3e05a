"""Text generation on this machine, in one run:

1. quality on the trained jargon model (examples/jargon): perplexity of every candidate (fp32, int8, int4)
   on the held-out entries against fp32's, and the share of positions where int4's greedy next token is
   fp32's;
2. speed: time to first token and tokens per second at 64 and 256 new tokens (greedy, a 32-token prompt,
   the same token ids everywhere), onnxruntime-genai fp32 / int8 / int4 against torch eager `generate()`
   on the same fp32 weights and against llama.cpp (llama-cpp-python, built here from its sdist for AVX2,
   no -march=native) at 4 bits (Q4_0) and 8 bits (Q8_0) converted from the same weights;
3. memory and fit: peak RSS of a fresh process holding a full-context KV cache, the MemorySize pack
   derives from it, and which candidates fit a zip (250 MB with the runtime wheels) and an image (10 GB).

    .venv/bin/python bench/generate.py                     # the jargon model (minutes)
    .venv/bin/python bench/generate.py --sizes 0.5b,1.5b   # also random-weight Qwen2-shaped decoders (hours)
    .venv/bin/python bench/generate.py --no-llama-cpp      # skip llama.cpp (first build 7-17 min, then cached)

Each engine runs in its own process with the same thread count (--threads, default 2). Checkpoints,
builds and llama.cpp live under ~/.cache/lambdafit/bench and ~/.cache/lambdafit/llama-cpp.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CACHE = Path(os.environ.get("LAMBDAFIT_BENCH_CACHE") or Path.home() / ".cache" / "lambdafit" / "bench")
LLAMA_CACHE = Path.home() / ".cache" / "lambdafit" / "llama-cpp"
LLAMA_VERSION = "0.3.36"
LLAMA_CMAKE = "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAVA_BUILD=OFF"
"""AVX2 without -march=native: what Lambda x86_64 guarantees (the build machine has AVX-512)."""
JARGON = ROOT / "examples" / "jargon"
PRECISIONS = ("fp32", "int8", "int4")
NEW_TOKENS = (64, 256)
PROMPT_TOKENS = 32


def run(command: list[str], env: dict[str, str] | None = None, timeout: float = 6 * 3600) -> str:
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} failed: {result.stderr.strip()[-800:]}")
    return result.stdout


def last_json(text: str) -> dict[str, Any]:
    return dict(json.loads(text.strip().splitlines()[-1]))


# Models


def checkpoint(name: str) -> tuple[Path, Path]:
    """The checkpoint folder and the held-out text for `name`: jargon, or qwen2-0.5b / qwen2-1.5b."""
    text = JARGON / "heldout.txt"
    if name == "jargon":
        if not (JARGON / "checkpoint" / "config.json").is_file():
            run([sys.executable, str(JARGON / "model.py")])
        return JARGON / "checkpoint", text
    arch, size = name.split("-")
    folder = CACHE / name / "checkpoint"
    if not (folder / "config.json").is_file():
        if not text.is_file():
            run([sys.executable, str(JARGON / "model.py")])
        run([sys.executable, str(JARGON / "model.py"), "--random", size, "--arch", arch, "--out", str(folder)])
    return folder, text


def built(name: str, source: Path, precision: str) -> Path:
    from packager.generate.recipes import RECIPES, build

    out = CACHE / name / precision
    if not (out / "model.onnx").is_file():
        build(source, RECIPES[precision], out, CACHE / name / "builder-cache")
        shutil.rmtree(CACHE / name / "builder-cache", ignore_errors=True)
    return out


def prompt_ids(source: Path, text: Path, path: Path) -> list[int]:
    from tokenizers import Tokenizer

    ids = Tokenizer.from_file(str(source / "tokenizer.json")).encode(text.read_text(encoding="utf-8")).ids
    path.write_text(json.dumps(ids[:PROMPT_TOKENS]))
    return ids[:PROMPT_TOKENS]


# Engines, each in a fresh process


def genai(folder: Path, text: Path, ids: Path, threads: int, reps: int, score: int) -> dict[str, Any]:
    """onnxruntime-genai through the packager's own probe: perplexity, speed, peak RSS."""
    argmax = folder.parent / f"{folder.name}-argmax.npy"
    out = run([sys.executable, "-m", "packager.generate.probe", str(folder), str(text), str(argmax),
               "--max-tokens", str(score), "--prompt-ids", str(ids), "--new-tokens", ",".join(map(str, NEW_TOKENS)),
               "--reps", str(reps), "--threads", str(threads)],
              env=os.environ | {"PYTHONPATH": str(ROOT)})  # fmt: skip
    return last_json(out) | {"argmax": str(argmax)}


def torch_worker(source: str, ids_path: str, threads: int, reps: int) -> None:
    import statistics

    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32).eval()
    ids = torch.tensor([json.loads(Path(ids_path).read_text())])
    pad = model.config.pad_token_id or 0

    def timed(n: int) -> float:
        start = time.perf_counter()
        model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n, do_sample=False,
                       pad_token_id=pad)  # fmt: skip
        return time.perf_counter() - start

    speed = {}
    with torch.inference_mode():
        timed(4)
        for n in NEW_TOKENS:
            first = statistics.median(timed(1) for _ in range(reps))
            whole = statistics.median(timed(n) for _ in range(reps))
            speed[str(n)] = {"ttft_ms": first * 1000, "tokens_per_s": (n - 1) / max(whole - first, 1e-9)}
    print(json.dumps({"speed": speed}))


def llama_worker(gguf: str, ids_path: str, threads: int, reps: int) -> None:
    import statistics

    from llama_cpp import Llama

    prompt = json.loads(Path(ids_path).read_text())
    llm = Llama(model_path=gguf, n_ctx=max(NEW_TOKENS) + len(prompt) + 8, n_threads=threads,
                n_threads_batch=threads, verbose=False)  # fmt: skip

    def timed(n: int) -> tuple[float, float]:
        llm.reset()
        start = time.perf_counter()
        first = start
        for count, _ in enumerate(llm.generate(prompt, temp=0.0, top_k=1, repeat_penalty=1.0, reset=True), 1):
            if count == 1:
                first = time.perf_counter()
            if count == n:
                break
        return first - start, (n - 1) / max(time.perf_counter() - first, 1e-9)

    speed = {}
    timed(4)
    for n in NEW_TOKENS:
        runs = [timed(n) for _ in range(reps)]
        speed[str(n)] = {"ttft_ms": statistics.median(r[0] for r in runs) * 1000,
                         "tokens_per_s": statistics.median(r[1] for r in runs)}  # fmt: skip
    print(json.dumps({"speed": speed}))


def quantize_worker(source: str, target: str, kind: str) -> None:
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{kind}")
    params.nthread = 2
    if llama_cpp.llama_model_quantize(source.encode(), target.encode(), ctypes.byref(params)) != 0:
        raise SystemExit(f"quantizing to {kind} failed")


def worker(kind: str, *args: str) -> dict[str, Any]:
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(llama_site()), str(ROOT)]) if kind != "torch" else str(ROOT)}
    return last_json(run([sys.executable, __file__, "--worker", kind, *args], env=env))


# llama.cpp, built once from its sdist


def llama_sources() -> Path:
    sdist = LLAMA_CACHE / f"llama_cpp_python-{LLAMA_VERSION}.tar.gz"
    if not sdist.is_file():
        LLAMA_CACHE.mkdir(parents=True, exist_ok=True)
        run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
             f"llama-cpp-python=={LLAMA_VERSION}", "-d", str(LLAMA_CACHE)])  # fmt: skip
    source = LLAMA_CACHE / f"llama_cpp_python-{LLAMA_VERSION}"
    if not (source / "vendor").is_dir():
        with tarfile.open(sdist) as archive:
            archive.extractall(LLAMA_CACHE, filter="data")
    return source


def llama_site() -> Path:
    """llama-cpp-python built for AVX2 and unpacked into its own folder (not the venv)."""
    site = LLAMA_CACHE / f"site-{LLAMA_VERSION}-avx2"
    if (site / "llama_cpp").is_dir():
        return site
    wheels = LLAMA_CACHE / "wheels-avx2"
    if not list(wheels.glob("llama_cpp_python-*.whl")):
        print(f"building llama-cpp-python {LLAMA_VERSION} from its sdist ({LLAMA_CMAKE}); minutes", flush=True)
        start = time.monotonic()
        run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
             str(llama_sources()), "-w", str(wheels)],
            env=os.environ | {"CMAKE_ARGS": LLAMA_CMAKE, "CMAKE_BUILD_PARALLEL_LEVEL": "2"})  # fmt: skip
        print(f"built in {time.monotonic() - start:.0f} s", flush=True)
    [wheel] = wheels.glob("llama_cpp_python-*.whl")
    run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel),
         "diskcache"])  # fmt: skip
    return site


CONVERT = """
import os, runpy, sys
sys.path.insert(0, os.environ["LLAMA_CPP_DIR"])
import conversion.base as base
# A vocabulary trained here has no pre-tokenizer hash llama.cpp knows: it is byte-level BPE, as GPT-2's.
base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt-2"
# Nor a tokenizer.model: llama.cpp imports sentencepiece before it looks for one and only falls back to
# tokenizer.json (its GPT-2 path) on FileNotFoundError, so raise that first rather than need sentencepiece.
sentencepiece = base.TextModel._create_vocab_sentencepiece
def create_vocab_sentencepiece(self):
    if not (self.dir_model / "tokenizer.model").is_file():
        raise FileNotFoundError(f"File not found: {self.dir_model / 'tokenizer.model'}")
    return sentencepiece(self)
base.TextModel._create_vocab_sentencepiece = create_vocab_sentencepiece
sys.argv = [os.path.join(os.environ["LLAMA_CPP_DIR"], "convert_hf_to_gguf.py")] + sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def gguf(name: str, source: Path, kind: str) -> Path:
    """The checkpoint converted by llama.cpp's own script (f16), then quantized to `kind` by llama.cpp."""
    folder = CACHE / name / "gguf"
    target = folder / f"{kind}.gguf"
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    f16 = folder / "f16.gguf"
    if not f16.is_file():
        vendor = llama_sources() / "vendor" / "llama.cpp"
        script = folder / "convert.py"
        script.write_text(CONVERT)
        env = os.environ | {"LLAMA_CPP_DIR": str(vendor), "PYTHONPATH": str(vendor / "gguf-py")}
        run([sys.executable, str(script), str(source), "--outfile", str(f16), "--outtype", "f16"], env=env)
    env = os.environ | {"PYTHONPATH": str(llama_site())}
    run([sys.executable, __file__, "--worker", "quantize", str(f16), str(target), kind], env=env)
    return target


# The run


def fit(name: str, folder: Path, peak_mb: float, wheels: Any) -> dict[str, Any]:
    from packager.config import DEFAULT_PYTHON, NAMED_BUDGETS, Arch, Budget, PackageType
    from packager.cost import memory_for
    from packager.generate.measure import folder_bytes
    from packager.size import PackageSize

    model = folder_bytes(folder)
    zip_bytes = PackageSize(PackageType.ZIP, Budget.parse("zip"), wheels, DEFAULT_PYTHON, Arch.X86_64).of(model, None)
    image = PackageSize(PackageType.IMAGE, Budget.parse("image"), wheels, DEFAULT_PYTHON, Arch.X86_64).of(model, None)
    return {
        "model_mb": model / 1e6,
        "peak_rss_mb": peak_mb,
        "memory_mb": memory_for(peak_mb),
        "zip_mb": zip_bytes / 1e6,
        "fits_zip": zip_bytes <= NAMED_BUDGETS["zip"],
        "image_mb": image / 1e6,
        "fits_image": image <= NAMED_BUDGETS["image"],
    }


def bench_model(name: str, args: argparse.Namespace, wheels: Any) -> dict[str, Any]:
    import numpy as np

    source, text = checkpoint(name)
    ids = CACHE / name / "prompt.json"
    ids.parent.mkdir(parents=True, exist_ok=True)
    prompt_ids(source, text, ids)
    big = name != "jargon"
    reps = 1 if big else 3
    score = 2048 if big else 1 << 20
    result: dict[str, Any] = {"engines": {}, "fit": {}}
    for precision in PRECISIONS:
        print(f"{name}: onnxruntime-genai {precision}", flush=True)
        folder = built(name, source, precision)
        numbers = genai(folder, text, ids, args.threads, reps, score)
        result["engines"][f"onnxruntime-genai {precision}"] = numbers
        result["fit"][precision] = fit(name, folder, numbers["peak_rss_mb"], wheels)
    base = result["engines"]["onnxruntime-genai fp32"]
    base_argmax = np.load(base["argmax"])
    for precision in PRECISIONS:
        numbers = result["engines"][f"onnxruntime-genai {precision}"]
        picks = np.load(numbers["argmax"])
        numbers["perplexity"] = float(np.exp(numbers["nll"] / max(1, numbers["tokens"])))
        numbers["agreement"] = float(np.mean(picks == base_argmax)) if len(picks) else None
    print(f"{name}: torch eager generate()", flush=True)
    result["engines"]["torch eager fp32"] = worker("torch", str(source), str(ids), str(args.threads), str(reps))
    if args.llama_cpp:
        for kind in ("Q4_0", "Q8_0"):
            print(f"{name}: llama.cpp {kind}", flush=True)
            path = gguf(name, source, kind)
            numbers = worker("llama", str(path), str(ids), str(args.threads), str(reps))
            result["engines"][f"llama.cpp {kind}"] = numbers | {"model_mb": path.stat().st_size / 1e6}
    if big and not args.keep:
        for precision in PRECISIONS:
            shutil.rmtree(CACHE / name / precision, ignore_errors=True)
    return result


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def report(results: dict[str, dict[str, Any]]) -> str:
    out = []
    if "jargon" in results:
        engines = results["jargon"]["engines"]
        base = engines["onnxruntime-genai fp32"]
        rows = []
        for precision in PRECISIONS:
            m = engines[f"onnxruntime-genai {precision}"]
            rows.append((precision, f"{results['jargon']['fit'][precision]['model_mb']:.2f}", f"{m['perplexity']:.2f}",
                         f"{100 * (m['perplexity'] / base['perplexity'] - 1):+.2f}%", f"{m['agreement']:.4f}",
                         str(m["tokens"])))  # fmt: skip
        out += ["Quality (jargon model, held-out entries):", "",
                table(("candidate", "model MB", "perplexity", "vs fp32", "greedy next token = fp32's", "tokens"), rows), ""]  # fmt: skip
    rows = []
    for name, result in results.items():
        engines = result["engines"]
        torch_rate = engines["torch eager fp32"]["speed"]["256"]["tokens_per_s"]
        for engine, m in engines.items():
            cells = []
            for n in NEW_TOKENS:
                s = m["speed"][str(n)]
                cells += [f"{s['ttft_ms']:.1f}", f"{s['tokens_per_s']:.0f}"]
            ratio = m["speed"]["256"]["tokens_per_s"] / torch_rate
            rows.append((name, engine, *cells, f"{ratio:.2f}x"))
    out += ["Speed (greedy, 32-token prompt, same token ids; TTFT = prompt pass and first token):", "",
            table(("model", "engine", "TTFT ms @64", "tok/s @64", "TTFT ms @256", "tok/s @256",
                   "tok/s @256 vs torch"), rows), ""]  # fmt: skip
    goals = []
    for name, result in results.items():
        engines = result["engines"]
        int4 = engines["onnxruntime-genai int4"]["speed"]["256"]["tokens_per_s"]
        torch_rate = engines["torch eager fp32"]["speed"]["256"]["tokens_per_s"]
        line = f"- {name}: int4 / torch fp32 = {int4 / torch_rate:.2f}x (goal >= 3x)"
        if "llama.cpp Q4_0" in engines:
            llama = engines["llama.cpp Q4_0"]["speed"]["256"]["tokens_per_s"]
            line += f"; llama.cpp Q4_0 / int4 = {llama / int4:.2f}x (goal <= 1.5x)"
        goals.append(line)
    out += ["Goals at 256 new tokens:", "", *goals, ""]
    rows = []
    for name, result in results.items():
        for precision, f in result["fit"].items():
            rows.append((name, precision, f"{f['model_mb']:.1f}", f"{f['peak_rss_mb']:.0f}", str(f["memory_mb"]),
                         f"{f['zip_mb']:.0f} ({'fits' if f['fits_zip'] else 'over 262'})",
                         f"{f['image_mb']:.0f} ({'fits' if f['fits_image'] else 'over 10,737'})"))  # fmt: skip
    out += ["Memory and fit (peak RSS: fresh process, KV cache at the full context; MemorySize = peak x 1.3):", "",
            table(("model", "candidate", "model MB", "peak RSS MB", "MemorySize", "zip MB", "image MB"), rows)]  # fmt: skip
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="", help="comma list of random decoders to add: 0.5b, 1.5b")
    parser.add_argument("--arch", default="qwen2", choices=("qwen2", "llama"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-llama-cpp", dest="llama_cpp", action="store_false")
    parser.add_argument("--keep", action="store_true", help="keep the large models' builds (GBs) after the run")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, *rest = args.worker
        {"torch": lambda: torch_worker(rest[0], rest[1], int(rest[2]), int(rest[3])),
         "llama": lambda: llama_worker(rest[0], rest[1], int(rest[2]), int(rest[3])),
         "quantize": lambda: quantize_worker(rest[0], rest[1], rest[2])}[kind]()  # fmt: skip
        return
    from packager.config import DEFAULT_PYTHON, Arch
    from packager.generate.pipeline import EXTRA
    from packager.wheels import vendor_wheels

    wheels = vendor_wheels(DEFAULT_PYTHON, Arch.X86_64, (EXTRA,))
    names = ["jargon"] + [f"{args.arch}-{size}" for size in args.sizes.split(",") if size]
    started = time.monotonic()
    load = os.getloadavg()
    results = {name: bench_model(name, args, wheels) for name in names}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print()
    print(report(results))
    print(f"\n{args.threads} threads per engine; load average at the start {load[0]:.1f}, at the end "
          f"{os.getloadavg()[0]:.1f}; {time.monotonic() - started:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
