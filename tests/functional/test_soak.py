"""Soak: 20,000 requests through `lambdafit serve` on loopback, bounded in count and time."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REQUESTS = 20_000
WARMUP = 1_000
ROW = [0.5] * 64


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def start(bundle: Path, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    env = os.environ | {"POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "WARNING"}
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "packager.cli", "serve", str(bundle), "--port", "0"], stdout=out, stderr=out, env=env
        )
    for _ in range(300):
        if "http://127.0.0.1:" in log.read_text():
            return server, int(log.read_text().split("http://127.0.0.1:")[1].split()[0])
        time.sleep(0.1)
    server.kill()
    raise AssertionError(f"lambdafit serve did not start: {log.read_text()}")


@pytest.mark.slow
def test_twenty_thousand_requests_zero_errors_flat_memory(digits_bundle: Path, tmp_path: Path) -> None:
    server, port = start(digits_bundle, tmp_path / "serve.log")
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        bodies = [
            ("POST", "/predict", json.dumps({"inputs": [ROW, ROW]}), 200),
            (
                "POST",
                "/v2/models/digits/infer",
                json.dumps({"inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP32", "data": ROW}]}),
                200,
            ),
            ("POST", "/predict", '{"inputs": [[1, 2]]}', 400),
            ("GET", "/health", "", 200),
            ("GET", "/nope", "", 404),
        ]
        errors = 0
        baseline = 0
        deadline = time.monotonic() + 600
        for number in range(REQUESTS):
            method, path, body, expected = bodies[number % len(bodies)]
            connection.request(method, path, body=body or None, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            payload = response.read()
            if response.status != expected or not payload:
                errors += 1
            if number + 1 == WARMUP:
                baseline = rss_kb(server.pid)
            assert time.monotonic() < deadline, "soak took over 10 minutes"
        growth_mb = (rss_kb(server.pid) - baseline) / 1024
        print(f"soak: {REQUESTS} requests, {errors} errors, RSS growth {growth_mb:.2f} MB after warm-up")
        connection.close()
        assert errors == 0
        assert growth_mb < 10
    finally:
        server.terminate()
        server.wait(timeout=30)
