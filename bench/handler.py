"""The handler's own cost, in one run:

1. warm latency through the Lambda handler (powertools resolver, validation, JSON both ways, EMF
   metrics written to a discarded stdout) against raw `InferenceSession.run` on the same session and
   inputs, interleaved, on the digits CNN and on the 109 M-parameter transformer (>= 10 ms a call);
   the bar: handler p50 <= 1.05 x raw p50 + 0.2 ms;
2. init time in a fresh interpreter, split into numpy + onnxruntime imports, powertools imports,
   lambdafit's own imports, checksum + manifest, session creation, app creation; and the packages loaded;
3. requests per second of `lambdafit serve --workers 2` under wrk (Debian's wrk; a Python client if absent).

    .venv/bin/python bench/handler.py [--skip-transformer]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from handlers.app import make_handler  # noqa: E402
from handlers.contract import RuntimeSettings  # noqa: E402
from handlers.events import RestEvent  # noqa: E402
from handlers.runtime import ModelRuntime, decode_inputs  # noqa: E402
from packager.config import PackConfig  # noqa: E402
from packager.emulator import LambdaContext  # noqa: E402
from packager.pack import pack  # noqa: E402

ROUNDS = 2000

INIT_PROBE = """
import json, sys, time
t0 = time.perf_counter()
import numpy, onnxruntime
t1 = time.perf_counter()
import aws_lambda_powertools.event_handler, aws_lambda_powertools.logging, aws_lambda_powertools.metrics
t2 = time.perf_counter()
import handlers.app
from handlers.contract import RuntimeSettings
from handlers.runtime import load_service
t3 = time.perf_counter()
service = load_service(RuntimeSettings(model_dir=__import__("pathlib").Path(sys.argv[1])))
t4 = time.perf_counter()
app = handlers.app.Endpoint(service, handlers.app.Metrics(namespace="bench"))
t5 = time.perf_counter()
timings = service.runtime.timings
top = sorted({name.split(".")[0] for name in sys.modules if not name.startswith("_")})
print(json.dumps({
    "numpy + onnxruntime import": (t1 - t0) * 1000,
    "powertools imports": (t2 - t1) * 1000,
    "lambdafit imports": (t3 - t2) * 1000,
    "manifest + sha256": timings["verify_ms"],
    "session creation": timings["session_ms"],
    "lambdafit other (load_service, Endpoint)": ((t4 - t3) * 1000 - timings["verify_ms"] - timings["session_ms"]) + (t5 - t4) * 1000,
    "packages": top,
}))
"""


def bundle_for(name: str, out: Path) -> Path:
    if name == "digits":
        config = PackConfig(
            model=f"{ROOT}/examples/digits/model.py:build",
            name="digits",
            output_dir=out,
            eval_data=ROOT / "examples/digits/eval.npz",
            python="3.11",
            recipes=("slim+int8-static",),
        )
    else:
        if not (ROOT / "examples/transformer/eval.npz").is_file():
            subprocess.run([sys.executable, str(ROOT / "examples/transformer/model.py")], check=True)
        config = PackConfig(
            model=f"{ROOT}/examples/transformer/model.py:build",
            name="transformer",
            output_dir=out,
            eval_data=ROOT / "examples/transformer/eval.npz",
            python="3.11",
            recipes=("slim",),
        )
    return pack(config).bundle


def warm_latency(bundle: Path, rows: list[object]) -> dict[str, float]:
    model_dir = bundle / "function" / "model"
    handler = make_handler(RuntimeSettings(model_dir=model_dir))
    runtime = ModelRuntime.load(RuntimeSettings(model_dir=model_dir))
    feed = decode_inputs({"inputs": rows}, runtime.manifest.inputs)
    event = RestEvent.build(
        "POST", "/predict", body=json.dumps({"inputs": rows}), headers={"Content-Type": "application/json"}
    )
    context = LambdaContext(function_name=bundle.name)
    raw, through = [], []
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        for _ in range(50):
            handler(event, context)
            runtime.session.run(None, feed)
        for i in range(ROUNDS):
            if i % 100 == 0:
                sink.seek(0)
                sink.truncate()
            start = time.perf_counter()
            runtime.session.run(None, feed)
            middle = time.perf_counter()
            result = handler(event, context)
            end = time.perf_counter()
            assert result["statusCode"] == 200
            raw.append((middle - start) * 1000)
            through.append((end - middle) * 1000)
    raw_p50, handler_p50 = float(np.median(raw)), float(np.median(through))
    return {
        "raw p50 ms": raw_p50,
        "handler p50 ms": handler_p50,
        "bar ms": 1.05 * raw_p50 + 0.2,
        "overhead ms": handler_p50 - raw_p50,
    }


def init_split(bundle: Path) -> dict[str, object]:
    """In fresh interpreters, with bytecode compiled as the image compiles it (read-only /var/task)."""
    code = Path(tempfile.mkdtemp())
    shutil.copytree(ROOT / "handlers", code / "handlers", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", str(code)], check=True
    )
    runs = []
    for _ in range(5):
        out = subprocess.run(
            [sys.executable, "-c", INIT_PROBE, str(bundle / "function" / "model")],
            capture_output=True,
            text=True,
            check=True,
            cwd=code,
            env=os.environ | {"PYTHONPATH": str(code)},
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    medians: dict[str, object] = {k: float(np.median([r[k] for r in runs])) for k in runs[0] if k != "packages"}
    medians["packages"] = runs[0]["packages"]
    return medians


def requests_per_second(bundle: Path, workers: int = 2, seconds: int = 10) -> dict[str, float]:
    port = 3900
    env = os.environ | {"POWERTOOLS_LOG_LEVEL": "WARNING"}
    server = subprocess.Popen(
        [sys.executable, "-m", "packager.cli", "serve", str(bundle), "--port", str(port), "--workers", str(workers)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=ROOT,
    )
    try:
        import urllib.request

        for _ in range(100):
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
                break
            time.sleep(0.1)
        time.sleep(1.0)
        body = json.dumps({"inputs": [[0.5] * 64]})
        if shutil.which("wrk"):
            with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
                script.write(
                    f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\nwrk.headers["Content-Type"] = "application/json"\n'
                )
            result = subprocess.run(
                [
                    "wrk",
                    "-t2",
                    "-c4",
                    f"-d{seconds}s",
                    "-s",
                    script.name,
                    "--latency",
                    f"http://127.0.0.1:{port}/predict",
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            os.unlink(script.name)
            rps = float(next(line.split()[1] for line in result.stdout.splitlines() if line.startswith("Requests/sec")))
            p50 = next(line.split()[1] for line in result.stdout.splitlines() if line.strip().startswith("50%"))
            non2xx = [line for line in result.stdout.splitlines() if "Non-2xx" in line or "Socket errors" in line]
            return {"requests/s": rps, "p50": p50, "errors": non2xx or "none"}  # type: ignore[dict-item]
        raise SystemExit("wrk not found: apt-get install wrk")
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-transformer", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        digits = bundle_for("digits", out)
        row = np.load(ROOT / "examples/digits/eval.npz")["x"][:1].tolist()
        print("warm latency, digits (batch 1):", json.dumps(warm_latency(digits, row), indent=None))
        if not args.skip_transformer:
            transformer = bundle_for("transformer", out)
            ids = np.load(ROOT / "examples/transformer/eval.npz")["input_ids"][:1].tolist()
            print("warm latency, transformer fp32 (batch 1):", json.dumps(warm_latency(transformer, ids)))
        split = init_split(digits)
        packages = split.pop("packages")
        print("init split, digits, median of 5 fresh interpreters (ms):")
        for part, ms in split.items():
            print(f"  {part:45s} {ms:8.1f}")
        ours = (
            split["lambdafit imports"] + split["manifest + sha256"] + split["lambdafit other (load_service, Endpoint)"]
        )  # type: ignore[operator]
        print(f"  lambdafit's own share: {ours:.1f} ms (bar: 10 ms)")
        print("  packages loaded:", " ".join(packages))  # type: ignore[arg-type]
        print("lambdafit serve --workers 2 under wrk -t2 -c4 10s:", requests_per_second(digits))


if __name__ == "__main__":
    main()
