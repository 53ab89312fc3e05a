"""The /docs page in a real headless Chromium: Swagger UI renders offline and lists the routes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--virtual-time-budget=8000", "--window-size=1280,1000",
]  # fmt: skip


def chromium() -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.fail("Chromium is missing: `make test` installs Debian's chromium package (apt-get install chromium)")
    return binary


def test_docs_page_renders_every_route(digits_server: str, tmp_path: Path) -> None:
    profile = ["--user-data-dir=" + str(tmp_path / "profile")]
    dom = subprocess.run(
        [chromium(), *FLAGS, *profile, "--dump-dom", f"{digits_server}/docs"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    for path in ["/predict", "/health", "/v2/models/{name}/infer", "/v2/health/ready", "/v2/models/{name}/ready"]:
        assert f'data-path="{path}"' in dom, path
    assert "digits inference API" in dom
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "docs.png"
    subprocess.run(
        [chromium(), *FLAGS, *profile, f"--screenshot={screenshot}", f"{digits_server}/docs"],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    assert screenshot.stat().st_size > 20_000
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
