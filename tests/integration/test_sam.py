"""The real AWS SAM CLI and Docker on generated bundles and the root template."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from handlers.app import make_handler
from packager.bundle import base_image as base_image_of
from packager.config import DEFAULT_PYTHON, Arch
from packager.emulator import LambdaContext, open_bundle, serve_bundle
from tests.conftest import ROOT
from tests.integration.conftest import EMULATION, Sam

pytestmark = pytest.mark.integration
ROW = [0.5] * 64


@pytest.mark.parametrize("which", ["root", "bundle"])
def test_sam_validate_lint(sam: Sam, digits_bundle: Path, which: str) -> None:
    folder = ROOT if which == "root" else digits_bundle
    result = sam.run("validate", "--lint", "-t", "template.yaml", cwd=folder, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def _last_json(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)  # type: ignore[no-any-return]
    raise AssertionError(f"no JSON response in sam output:\n{text[-2000:]}")


@pytest.mark.parametrize("kind", ["image-rest", "zip-http"])
def test_sam_local_invoke_answers_every_bundle_event_like_lambdafit_serve(
    sam: Sam, built_bundles: dict[str, Path], kind: str
) -> None:
    bundle = built_bundles[kind]
    opened = open_bundle(bundle)
    api = opened.app.api
    local = make_handler(opened.settings)
    events = sorted((bundle / "events").glob("*.json"))
    assert {e.name for e in events} >= {f"predict-{api.value}.json", f"v2-infer-{api.value}.json"}
    for event in events:
        result = sam.run(
            "local", "invoke", "-e", str(event), "--skip-pull-image", "DigitsFunction", cwd=bundle, timeout=300
        )
        response = _last_json(result.stdout)
        assert response["statusCode"] == 200, (event.name, result.stdout[-2000:], result.stderr[-2000:])
        expected = local(json.loads(event.read_text()), LambdaContext(function_name="digits"))
        assert json.loads(str(response["body"])) == json.loads(expected["body"]), event.name


def image_layers(image: str) -> dict[str, int]:
    """Bytes per part of the image: base, dependencies, code (handler, bytecode, docs assets), model."""
    history = subprocess.run(["docker", "history", "--no-trunc", "--format", "{{.Size}}\t{{.CreatedBy}}", image],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
    base_image = base_image_of(DEFAULT_PYTHON, Arch.X86_64)
    base = subprocess.run(
        ["docker", "image", "inspect", base_image, "-f", "{{.Size}}"], capture_output=True, text=True, check=True
    )
    base_layers = subprocess.run(["docker", "history", "-q", base_image], capture_output=True, text=True, check=True)
    parts = {"base": int(base.stdout), "dependencies": 0, "code": 0, "model": 0, "other": 0}
    units = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}
    own = history.splitlines()[: len(history.splitlines()) - len(base_layers.stdout.splitlines())]
    for line in own:
        size_text, created = line.split("\t", 1)
        number, unit = re.fullmatch(r"([\d.]+)(\w+)", size_text).groups()  # type: ignore[union-attr]
        size = int(float(number) * units[unit])
        if "/var/task/model/" in created:
            parts["model"] += size
        elif "/var/task/handlers" in created or "/var/task/static/" in created:
            parts["code"] += size
        elif "COPY dir:" in created and "in /var/task/ " in created:
            parts["dependencies"] += size
        elif "/tmp/wheels" in created:
            raise AssertionError(f"the wheel archives ended up in the final image: {created[:120]}")
        else:
            parts["other"] += size
    return parts


def test_package_sizes_are_within_lambda_limits(built_bundles: dict[str, Path]) -> None:
    tag = f"digitsfunction:python{DEFAULT_PYTHON}-v1"
    image = subprocess.run(["docker", "image", "inspect", tag, "-f", "{{.Size}}"], capture_output=True, text=True,
                           check=True)  # fmt: skip
    image_bytes = int(image.stdout.strip())
    layers = image_layers(tag)
    artifact = built_bundles["zip-http"] / ".aws-sam" / "build" / "DigitsFunction"
    unzipped = sum(p.stat().st_size for p in artifact.rglob("*") if p.is_file())
    zipped = subprocess.run(
        ["bash", "-c", f"cd {artifact} && zip -qr -X - . | wc -c"], capture_output=True, text=True, check=True
    )
    print(
        f"image {image_bytes / 1e6:.1f} MB of 10,737 MB: "
        + ", ".join(f"{part} {size / 1e6:.1f} MB" for part, size in layers.items())
        + f"; zip {unzipped / 1e6:.1f} MB unzipped of 262 MB, {int(zipped.stdout) / 1e6:.1f} MB zipped"
    )
    assert image_bytes < 10_737_418_240
    assert layers["dependencies"] > 50e6 and layers["model"] > 0 and layers["code"] > 0
    assert abs(sum(layers.values()) - image_bytes) / image_bytes < 0.05
    assert unzipped < 262_144_000
    assert (artifact / "numpy" / "_core").is_dir() and list(
        (artifact / "numpy" / "_core").glob("_multiarray_umath*.so")
    )
    # Compiled for the runtime by a python3.13 (the harness's, on PATH through the Makefile): no cold start
    # compiles the handler or its packages again.
    assert list((artifact / "handlers" / "__pycache__").glob(f"app.cpython-{DEFAULT_PYTHON.replace('.', '')}.pyc"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CORPUS: list[tuple[str, str, str | None]] = [
    ("POST", "/predict", json.dumps({"inputs": [ROW, [0.1] * 64]})),
    ("GET", "/health", None),
    ("GET", "/v2", None),
    ("GET", "/v2/health/ready", None),
    ("GET", "/v2/models/digits", None),
    (
        "POST",
        "/v2/models/digits/infer",
        json.dumps({"id": "7", "inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP32", "data": ROW}]}),
    ),
    ("POST", "/v2/models/nope/infer", json.dumps({"inputs": []})),
    ("POST", "/predict", '{"inputs": [[1, 2'),
    ("POST", "/predict", json.dumps({"inputs": [[0.5] * 10]})),
    ("POST", "/predict", json.dumps({"inputs": [["a"] * 64]})),
    ("POST", "/predict", ""),
    ("GET", "/nope", None),
    ("GET", "/predict", None),
    ("GET", "/openapi.json", None),
]


def request(base: str, method: str, path: str, body: str | None) -> tuple[int, Any]:
    data = body.encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def start_api(sam: Sam, built_bundles: dict[str, Path]) -> Iterator[str]:
    """`sam local start-api --warm-containers EAGER` on the image bundle, on loopback."""
    port = _free_port()
    command = [sys.executable, str(EMULATION / "sam-hostnet"), "local", "start-api", "--skip-pull-image",
               "--warm-containers", "EAGER", "--port", str(port), "--host", "127.0.0.1"]  # fmt: skip
    log = built_bundles["image-rest"] / "start-api.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            command, cwd=built_bundles["image-rest"], env=sam.env, stdout=out, stderr=out, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if request(base, "GET", "/health", None)[0] == 200:
                    break
            except (OSError, ValueError):
                time.sleep(0.5)
        else:
            raise AssertionError(f"sam local start-api did not answer: {log.read_text()[-3000:]}")
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def test_start_api_and_lambdafit_serve_answer_alike(start_api: str, built_bundles: dict[str, Path]) -> None:
    server = serve_bundle(built_bundles["image-rest"], port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        ours = f"http://127.0.0.1:{server.server_address[1]}"
        for method, path, body in CORPUS:
            assert request(start_api, method, path, body) == request(ours, method, path, body), (method, path)
    finally:
        server.shutdown()
        server.server_close()


def _task_tree(image: str) -> dict[str, tuple[int, str]]:
    """(mode, sha256) of every file under /var/task in `image`: what the function ships."""
    import hashlib
    import io
    import tarfile

    container = subprocess.run(["docker", "create", image], capture_output=True, text=True, check=True).stdout.strip()
    try:
        exported = subprocess.run(["docker", "export", container], capture_output=True, check=True).stdout
    finally:
        subprocess.run(["docker", "rm", container], capture_output=True, check=False)
    tree = {}
    with tarfile.open(fileobj=io.BytesIO(exported)) as archive:
        for member in archive.getmembers():
            if member.name.startswith("var/task/") and (member.isfile() or member.issym()):
                handle = archive.extractfile(member) if member.isfile() else None
                content = handle.read() if handle else member.linkname.encode()
                tree[member.name] = (member.mode, hashlib.sha256(content).hexdigest())
    return tree


def test_image_builds_offline_to_the_same_content_twice(sam: Sam, digits_bundle: Path, tmp_path: Path) -> None:
    """Two --no-cache builds from the same bundle ship byte-identical files (layer timestamps aside)."""
    trees = []
    for tag in ("lambdafit-repro:a", "lambdafit-repro:b"):
        subprocess.run(["docker", "build", "-q", "--no-cache", "-t", tag, str(digits_bundle / "function")],
                       capture_output=True, text=True, check=True, timeout=600)  # fmt: skip
        trees.append(_task_tree(tag))
    subprocess.run(["docker", "rmi", "lambdafit-repro:a", "lambdafit-repro:b"], capture_output=True, check=False)
    assert len(trees[0]) > 1000
    assert trees[0] == trees[1]
    assert any(name.endswith(".pyc") for name in trees[0])
