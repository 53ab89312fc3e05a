"""The model fetched from S3 at init: real moto, in-process and as a moto_server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws

from handlers.contract import ContractError, RuntimeSettings, S3Uri
from handlers.model_store import fetch
from packager.emulator import LambdaContext
from tests.conftest import handler_for, load_event

BUCKET = "models"
KEY = "digits/model.onnx"
URI = f"s3://{BUCKET}/{KEY}"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@pytest.fixture
def manifest_only(digits_bundle: Path, tmp_path: Path) -> Path:
    """The function's model folder as it ships with an S3 model store: the manifest, no weights."""
    folder = tmp_path / "function" / "model"
    folder.mkdir(parents=True)
    shutil.copyfile(digits_bundle / "function" / "model" / "manifest.json", folder / "manifest.json")
    return folder


@pytest.fixture
def weights(digits_bundle: Path) -> bytes:
    return (digits_bundle / "function" / "model" / "model.onnx").read_bytes()


def predict(handler: Any) -> tuple[int, dict[str, Any]]:
    result = handler(load_event("predict-rest.json"), LambdaContext(function_name="digits"))
    return result["statusCode"], json.loads(result["body"])


def test_model_is_fetched_verified_and_reused(
    aws_env: None, manifest_only: Path, weights: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key=KEY, Body=weights)
        status, body = predict(handler_for(manifest_only, model_uri=S3Uri.parse(URI), cache_dir=cache))
        assert status == 200 and body["model"] == "digits"
        s3.delete_object(Bucket=BUCKET, Key=KEY)
        status, _ = predict(handler_for(manifest_only, model_uri=S3Uri.parse(URI), cache_dir=cache))
        assert status == 200  # the verified copy in the cache is reused, no second download
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [
        f"{json.loads((manifest_only / 'manifest.json').read_text())['sha256']}.onnx"
    ]


@pytest.mark.parametrize(("body", "kind"), [(b"not the model", "checksum_mismatch"), (None, "model_object_missing")])
def test_a_wrong_or_missing_object_answers_503_and_a_warm_sandbox_recovers_when_it_is_fixed(
    aws_env: None,
    manifest_only: Path,
    weights: bytes,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    body: bytes | None,
    kind: str,
) -> None:
    monkeypatch.setattr("handlers.runtime.RETRY_FIRST_S", 0.0)
    cache = tmp_path / "cache"
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        if body is not None:
            s3.put_object(Bucket=BUCKET, Key=KEY, Body=body)
        handler = handler_for(manifest_only, model_uri=S3Uri.parse(URI), cache_dir=cache)
        status, payload = predict(handler)
        assert status == 503 and payload["code"] == "model_not_ready" and kind in payload["error"]
        assert BUCKET not in payload["error"] and KEY not in payload["error"]  # the logs say where; callers do not
        health = handler(load_event("health-rest.json"), LambdaContext(function_name="digits"))
        assert (health["statusCode"], json.loads(health["body"])["reason"]) == (503, kind)
        assert not any(cache.glob("*.onnx"))
        s3.put_object(Bucket=BUCKET, Key=KEY, Body=weights)  # the object is fixed: the same sandbox recovers
        status, payload = predict(handler)
        assert status == 200 and payload["model"] == "digits"
        health = handler(load_event("health-rest.json"), LambdaContext(function_name="digits"))
        assert health["statusCode"] == 200


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def test_throttling_is_retried_with_backoff(aws_env: None, manifest_only: Path, weights: bytes, tmp_path: Path) -> None:
    from handlers.model_store import s3_client

    sha = json.loads((manifest_only / "manifest.json").read_text())["sha256"]
    with mock_aws():
        client = s3_client()
        client.create_bucket(Bucket=BUCKET)
        client.put_object(Bucket=BUCKET, Key=KEY, Body=weights)
        throttled: list[str] = []

        def slow_down(request: Any, **_: Any) -> AWSResponse | None:
            if len(throttled) < 2:
                throttled.append(request.url)
                error = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
                return AWSResponse(request.url, 503, {}, _Raw(error))
            return None

        client.meta.events.register_first("before-send.s3.GetObject", slow_down)
        path = fetch(S3Uri.parse(URI), sha, client=client, cache_dir=tmp_path / "cache")
        assert path.read_bytes() == weights
        assert len(throttled) == 2  # two SlowDown answers, retried by botocore, then the real object


@pytest.mark.parametrize("uri", ["https://example.invalid/model.onnx", "s3://bucket", "s3://Bad_Bucket/key", "s3:/x/y"])
def test_a_model_uri_that_is_not_s3_is_refused(uri: str) -> None:
    with pytest.raises(ContractError, match="is not an S3 URI of the form s3://bucket/key"):
        RuntimeSettings.from_env({"MODEL_URI": uri})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str) -> None:
    for _ in range(100):
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer")


AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture
def moto_server() -> Iterator[str]:
    """A moto_server on an ephemeral loopback port; yields its endpoint URL."""
    port = _free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait(f"http://127.0.0.1:{port}/moto-api/")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def s3_at(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip


def serve_and_predict(bundle: Path, env: dict[str, str]) -> dict[str, Any]:
    """`lambdafit serve` in its own process with `env`; one /predict; returns the answer."""
    port = _free_port()
    serve = subprocess.Popen(
        [sys.executable, "-m", "packager.cli", "serve", str(bundle), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        _wait(f"http://127.0.0.1:{port}/health")
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/predict", data=json.dumps({"inputs": [[0.5] * 64]}).encode(),
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
            return dict(json.loads(response.read()))
    finally:
        serve.terminate()
        serve.wait(timeout=30)


def test_serve_fetches_from_a_moto_server_on_loopback(
    moto_server: str, digits_bundle: Path, weights: bytes, tmp_path: Path
) -> None:
    env = (
        os.environ
        | AWS
        | {"AWS_ENDPOINT_URL": moto_server, "MODEL_URI": URI, "LAMBDAFIT_CACHE_DIR": str(tmp_path / "cache")}
    )
    bundle = tmp_path / "bundle"
    shutil.copytree(digits_bundle, bundle)
    (bundle / "function" / "model" / "model.onnx").unlink()
    s3 = s3_at(moto_server)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=weights)
    assert serve_and_predict(bundle, env)["model"] == "digits"
    assert len(list((tmp_path / "cache").glob("*.onnx"))) == 1


def test_pack_with_a_model_store_uploads_and_serve_fetches(
    moto_server: str, digits_files: dict[str, Path], tmp_path: Path
) -> None:
    """`pack --model-store` against a moto_server on loopback: the bundle ships without weights."""
    from tests.conftest import DIGITS

    env = os.environ | AWS | {"AWS_ENDPOINT_URL": moto_server, "LAMBDAFIT_CACHE_DIR": str(tmp_path / "cache")}
    s3 = s3_at(moto_server)
    s3.create_bucket(Bucket="store")
    packed = subprocess.run(
        [sys.executable, "-m", "packager.cli", "pack", f"{DIGITS / 'model.py'}:build", "--name", "digits",
         "--output", str(tmp_path), "--eval", str(digits_files["eval"]), "--recipes", "slim+int8-static",
         "--model-store", "s3://store/models"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert packed.returncode == 0, packed.stdout + packed.stderr
    bundle = tmp_path / "digits"
    manifest = json.loads((bundle / "function" / "model" / "manifest.json").read_text())
    assert not (bundle / "function" / "model" / "model.onnx").exists()
    template = (bundle / "template.yaml").read_text()
    key = f"models/digits/{manifest['sha256']}/model.onnx"
    assert f"MODEL_URI: s3://store/{key}" in template
    assert f"arn:aws:s3:::store/{key}" in template
    assert s3.head_object(Bucket="store", Key=key)["ContentLength"] > 0
    assert serve_and_predict(bundle, env)["version"] == manifest["version"]
