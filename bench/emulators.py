"""`lambdafit serve` against `sam local start-api --warm-containers EAGER`, same bundle, same requests,
in one run: per-request latency (median, p95) and requests per second of one sequential client.

    .venv/bin/python bench/emulators.py      # needs Docker + the SAM harness (make emulation)

SAM_HOSTNET_LOG_WAIT=0.02 caps SAM's wait for a log line after each request (see the harness README),
which would otherwise add up to a second to some requests and flatter us further.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from packager.config import PackConfig  # noqa: E402
from packager.pack import pack  # noqa: E402

EMULATION = Path(os.environ.get("LAMBDA_EMULATION_DIR") or ROOT.parent / "shared" / "lambda-emulation")
REQUESTS = 300
BODY = json.dumps({"inputs": [[0.5] * 64]})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(port: int, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"nothing answered on port {port}")


def measure(port: int) -> dict[str, float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    times = []
    for _ in range(20):
        connection.request("POST", "/predict", body=BODY, headers={"Content-Type": "application/json"})
        connection.getresponse().read()
    start = time.perf_counter()
    for _ in range(REQUESTS):
        begin = time.perf_counter()
        connection.request("POST", "/predict", body=BODY, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        assert response.status == 200
        times.append((time.perf_counter() - begin) * 1000)
    total = time.perf_counter() - start
    connection.close()
    return {"p50 ms": float(np.median(times)), "p95 ms": float(np.percentile(times, 95)), "req/s": REQUESTS / total}


def main() -> None:
    env = os.environ | {"SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "SAM_HOSTNET_LOG_WAIT": "0.02",
                        "POWERTOOLS_LOG_LEVEL": "WARNING"}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        config = PackConfig(
            model=f"{ROOT}/examples/digits/model.py:build",
            name="digits",
            output_dir=Path(tmp),
            eval_data=ROOT / "examples/digits/eval.npz",
            recipes=("slim+int8-static",),
        )
        bundle = pack(config).bundle
        subprocess.run([sys.executable, str(EMULATION / "sam-hostnet"), "build"], cwd=bundle, env=env, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        ours_port, sam_port = free_port(), free_port()
        ours = subprocess.Popen([sys.executable, "-m", "packager.cli", "serve", str(bundle), "--port", str(ours_port)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)  # fmt: skip
        sam = subprocess.Popen([sys.executable, str(EMULATION / "sam-hostnet"), "local", "start-api", "--skip-pull-image",
                                "--warm-containers", "EAGER", "--port", str(sam_port), "--host", "127.0.0.1"],
                               cwd=bundle, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)  # fmt: skip
        try:
            wait(ours_port)
            wait(sam_port)
            results = {"lambdafit serve": measure(ours_port), "sam local start-api (EAGER)": measure(sam_port)}
        finally:
            ours.terminate()
            os.killpg(sam.pid, signal.SIGTERM)
            ours.wait(timeout=30)
            sam.wait(timeout=60)
        shutil.rmtree(bundle / ".aws-sam", ignore_errors=True)
    for name, figures in results.items():
        print(
            f"{name:30s} p50 {figures['p50 ms']:7.2f} ms   p95 {figures['p95 ms']:7.2f} ms   {figures['req/s']:7.1f} req/s"
        )
    ratio = results["sam local start-api (EAGER)"]["p50 ms"] / results["lambdafit serve"]["p50 ms"]
    print(f"median latency: lambdafit serve is {ratio:.1f}x lower than sam local start-api (goal: >= 10x)")


if __name__ == "__main__":
    main()
