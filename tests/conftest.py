"""Shared fixtures: API Gateway events from tests/events/, and one packed digits bundle per session."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
EVENTS = Path(__file__).resolve().parent / "events"
DIGITS = ROOT / "examples" / "digits"


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def handler_for(model_dir: Path, **settings: Any) -> Any:
    """The bundle's real Lambda handler over `model_dir`, with these runtime settings."""
    from handlers.app import make_handler
    from handlers.contract import RuntimeSettings

    return make_handler(RuntimeSettings(model_dir=model_dir, **settings))


@pytest.fixture(scope="session")
def digits_files() -> dict[str, Path]:
    """The trained example: `python examples/digits/model.py` writes these (make does it first)."""
    files = {"weights": DIGITS / "weights.pt", "eval": DIGITS / "eval.npz", "train": DIGITS / "train.npz"}
    if not all(path.is_file() for path in files.values()):
        import runpy

        runpy.run_path(str(DIGITS / "model.py"), run_name="__main__")
    return files


@pytest.fixture(scope="session")
def digits_bundle(tmp_path_factory: pytest.TempPathFactory, digits_files: dict[str, Path]) -> Path:
    from packager.config import PackConfig
    from packager.pack import pack

    out = tmp_path_factory.mktemp("bundles")
    config = PackConfig(
        model=f"{DIGITS / 'model.py'}:build",
        name="digits",
        output_dir=out,
        eval_data=digits_files["eval"],
        calibration_data=digits_files["train"],
    )
    return pack(config).bundle


@pytest.fixture(scope="session")
def digits_server(digits_bundle: Path) -> Iterator[str]:
    """`lambdafit serve` on an ephemeral loopback port, in a thread: yields its base URL."""
    from packager.emulator import serve_bundle

    server = serve_bundle(digits_bundle, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """One request over loopback; returns status and the JSON body."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")  # tests/unit/test_metrics.py turns them back on
