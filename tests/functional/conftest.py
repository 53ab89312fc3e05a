"""A new user's project, made the way the README says: `lambdafit init`, a few lines edited, `lambdafit
pack` from the file. The tests of invoke, serve and deploy use the bundle it makes."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import DIGITS, ROOT

EDITS = {
    "# preprocess =": 'preprocess = "examples/digits/preprocess.json"',
    # What runs offline (moto cannot take an image or a REST API; see docs/deploy-offline.md), and faster:
    "# package-type =": 'package-type = "zip"',
    '# api = "rest"': 'api = "http"',
    '# recipes = ["auto"]': 'recipes = ["slim"]',
}


def lambdafit(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: int = 900
) -> subprocess.CompletedProcess[str]:
    """The CLI in its own process, its output captured (a pipe, as in CI)."""
    command = [sys.executable, "-m", "packager.cli", *args]
    environment = (env or os.environ) | {"PYTHONPATH": str(ROOT)}
    return subprocess.run(
        command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout, check=False
    )


@dataclass(frozen=True)
class Project:
    folder: Path
    init: subprocess.CompletedProcess[str]
    pack: subprocess.CompletedProcess[str]

    @property
    def bundle(self) -> Path:
        return self.folder / "build" / "digits"


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory, digits_files: dict[str, Path]) -> Project:
    folder = tmp_path_factory.mktemp("newuser")
    examples = folder / "examples" / "digits"
    examples.mkdir(parents=True)
    for name in ("model.py", "weights.pt", "eval.npz", "train.npz", "preprocess.json"):
        shutil.copyfile(DIGITS / name, examples / name)
    env = os.environ | {"LAMBDAFIT_PYTHON": os.environ.get("LAMBDAFIT_PYTHON", "3.11")}
    init = lambdafit("init", "examples/digits/model.py:build", cwd=folder, env=env)
    assert init.returncode == 0, init.stderr
    config = folder / "lambdafit.toml"
    text = config.read_text()
    for line, edited in EDITS.items():
        assert f"\n{line}\n" in text, line
        text = text.replace(f"\n{line}\n", f"\n{edited}\n")
    config.write_text(text)
    pack = lambdafit("pack", cwd=folder, env=env)
    assert pack.returncode == 0, pack.stdout + pack.stderr
    return Project(folder, init, pack)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer")


@dataclass(frozen=True)
class Moto:
    endpoint: str
    env: dict[str, str]


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    """moto_server (with tests/support/moto_cfn.py's two patches) on loopback, and the environment that
    points SAM and boto3 at it: http://localhost:PORT, not 127.0.0.1, so that moto reads SAM's path-style
    template URLs right (moto takes the host's first label as the bucket unless it is localhost)."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.moto_cfn", "-H", "127.0.0.1", "-p", str(port)],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=os.environ | {"PYTHONPATH": str(ROOT)},
        )  # fmt: skip
    endpoint = f"http://localhost:{port}"
    env = os.environ | {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "SAM_CLI_TELEMETRY": "0",
    }
    env.pop("AWS_PROFILE", None)
    try:
        wait_for(f"http://127.0.0.1:{port}/moto-api/")
        yield Moto(endpoint, env)
    finally:
        process.terminate()
        process.wait(timeout=30)
