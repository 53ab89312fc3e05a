"""`lambdafit invoke` against each kind of target: the bundle in-process, `lambdafit serve`, a front door
that checks SigV4 signatures with botocore's own code or an API key, and a stack kept by deploy."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from handlers.contract import ApiKind
from packager.config import Auth
from packager.deploy import Deployment, write_deployment
from tests.conftest import DIGITS, handler_for
from tests.functional.conftest import Project, lambdafit
from tests.support.gateways import Gateway, running

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIDLAMBDAFITTEST", "AWS_SECRET_ACCESS_KEY": "not-a-real-secret"}


def clean_env(**extra: str) -> dict[str, str]:
    """No AWS configuration from the machine: only what the test gives."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return env | {"AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/dev/null",
                  "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"} | extra  # fmt: skip


def first_digit() -> str:
    return str(int(np.load(DIGITS / "eval.npz")["labels"][0]))


@pytest.fixture(scope="module")
def handler(project: Project) -> Any:
    return handler_for(project.bundle / "function" / "model")


@pytest.fixture(scope="module")
def served(project: Project) -> Iterator[str]:
    from packager.emulator import serve_bundle

    server = serve_bundle(project.bundle, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_bundle_in_process_answers_its_own_sample_image(project: Project) -> None:
    sample = project.bundle / "requests" / "sample.png"
    result = lambdafit("invoke", str(project.bundle), "--image", str(sample), cwd=project.folder)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].startswith(f"row 0: {first_digit()}  score ")
    assert "in this process (http events)" in result.stderr and "image/png" in result.stderr
    bare = lambdafit("invoke", str(project.bundle), "--json", cwd=project.folder)
    answer = json.loads(bare.stdout)  # nothing but the JSON on stdout: no handler logs, no metrics
    assert answer["status"] == 200 and answer["body"]["predictions"][0]["label"] == first_digit()


def test_serve_takes_raw_images_json_and_stdin_alike(project: Project, served: str) -> None:
    sample = project.bundle / "requests" / "sample.png"
    answers = []
    for args, stdin in (
        (["--image", str(sample)], None),
        (["-"], sample.read_bytes()),
        (["--data", str(project.bundle / "requests" / "request.json")], None),
    ):
        result = _run_with_stdin(["invoke", served, *args, "--json"], stdin, project.folder)
        assert result["status"] == 200, result
        answers.append(result["body"])
    assert answers[0] == answers[1] == answers[2]


def _run_with_stdin(args: list[str], stdin: bytes | None, cwd: Path) -> Any:
    import subprocess
    import sys

    from tests.conftest import ROOT

    done = subprocess.run([sys.executable, "-m", "packager.cli", *args], cwd=cwd, input=stdin, capture_output=True,
                          env=os.environ | {"PYTHONPATH": str(ROOT)}, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def test_bench_prints_latency_percentiles(project: Project, served: str) -> None:
    image = str(project.bundle / "requests" / "sample.png")
    result = lambdafit("invoke", served, "--image", image, "--bench", "25", cwd=project.folder)
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(
        r"latency: p50 [\d.]+ ms, p90 [\d.]+ ms, p99 [\d.]+ ms, mean [\d.]+ ms, min [\d.]+ ms, max [\d.]+ ms; "
        r"[\d.]+ requests/s, 0 errors",
        line,
    ), line
    document = json.loads(
        lambdafit("invoke", served, "--image", image, "--bench", "5", "--json", cwd=project.folder).stdout
    )
    assert set(document["bench"]) >= {"p50_ms", "p90_ms", "p99_ms", "requests_per_s", "errors"}


@pytest.mark.parametrize("api", [ApiKind.HTTP, ApiKind.REST])
def test_sigv4_signed_with_the_credential_chain_passes_a_checking_gateway(
    project: Project, handler: Any, api: ApiKind
) -> None:
    gateway = Gateway(handler, "digits", api, secrets={CREDENTIALS["AWS_ACCESS_KEY_ID"]: "not-a-real-secret"},
                      region="eu-west-1", stage="/Prod" if api is ApiKind.REST else "")  # fmt: skip
    with running(gateway) as url:
        env = clean_env(**CREDENTIALS, AWS_REGION="eu-west-1", AWS_SESSION_TOKEN="session-token")
        result = lambdafit("invoke", url, "--auth", "iam", "--image", str(project.bundle / "requests" / "sample.png"),
                           cwd=project.folder, env=env)  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"row 0: {first_digit()}" in result.stdout and "(SigV4 execute-api eu-west-1)" in result.stderr
        assert gateway.seen[-1]["x-amz-security-token"] == "session-token"
        assert "x-amz-security-token" in gateway.seen[-1]["authorization"]

        wrong = clean_env(AWS_ACCESS_KEY_ID=CREDENTIALS["AWS_ACCESS_KEY_ID"], AWS_SECRET_ACCESS_KEY="wrong",
                          AWS_REGION="eu-west-1")  # fmt: skip
        sample = ["--data", str(project.bundle / "requests" / "request.json")]
        refused = lambdafit("invoke", url, *sample, "--auth", "iam", "--json", cwd=project.folder, env=wrong)
        assert refused.returncode == 1
        assert json.loads(refused.stdout) == {"status": 403, "body": {
            "message": "The request signature we calculated does not match the signature you provided."}}  # fmt: skip
        unsigned = lambdafit("invoke", url, *sample, "--auth", "none", "--json", cwd=project.folder, env=clean_env())
        assert json.loads(unsigned.stdout)["body"] == {"message": "Missing Authentication Token"}
        missing = lambdafit("invoke", url, *sample, "--auth", "iam", cwd=project.folder,
                            env=clean_env(AWS_REGION="eu-west-1"))  # fmt: skip
        assert missing.returncode == 2 and "botocore found no AWS credentials" in missing.stderr


def test_api_keys_are_sent_as_x_api_key(project: Project, handler: Any) -> None:
    gateway = Gateway(handler, "digits", ApiKind.REST, api_key="k3y-for-tests", stage="/Prod")
    sample = ["--data", str(project.bundle / "requests" / "request.json")]
    with running(gateway) as url:
        good = lambdafit("invoke", url, *sample, "--auth", "api-key", "--api-key", "k3y-for-tests", cwd=project.folder)
        assert good.returncode == 0 and f"row 0: {first_digit()}" in good.stdout
        from_env = lambdafit("invoke", url, *sample, "--auth", "api-key", cwd=project.folder,
                             env=os.environ | {"LAMBDAFIT_API_KEY": "k3y-for-tests"})  # fmt: skip
        assert from_env.returncode == 0
        wrong = lambdafit(
            "invoke", url, *sample, "--auth", "api-key", "--api-key", "nope", "--json", cwd=project.folder
        )
        assert json.loads(wrong.stdout) == {"status": 403, "body": {"message": "Forbidden"}}
        none = lambdafit("invoke", url, *sample, "--auth", "api-key", cwd=project.folder, env=clean_env())
        assert none.returncode == 2 and "give --api-key KEY or set LAMBDAFIT_API_KEY" in none.stderr


@pytest.mark.parametrize(("api", "service"), [(ApiKind.REST, "execute-api"), (ApiKind.FUNCTION_URL, "lambda")])
def test_a_stack_kept_by_deploy_is_called_by_name_with_its_auth_and_region(
    project: Project, handler: Any, tmp_path: Path, api: ApiKind, service: str
) -> None:
    """What `lambdafit deploy` keeps (deployment.json) is all `invoke STACK` needs: the endpoint, the front
    door (which SigV4 service signs: execute-api, or lambda for a function URL) and the region."""
    gateway = Gateway(handler, "digits", api, secrets={CREDENTIALS["AWS_ACCESS_KEY_ID"]: "not-a-real-secret"},
                      service=service, region="ap-southeast-2", stage="/Prod" if api is ApiKind.REST else "")  # fmt: skip
    bundle = tmp_path / "build" / "digits"
    (bundle / "requests").mkdir(parents=True)
    shutil.copyfile(project.bundle / "bundle.json", bundle / "bundle.json")
    shutil.copyfile(project.bundle / "requests" / "request.json", bundle / "requests" / "request.json")
    with running(gateway) as url:
        write_deployment(bundle, Deployment("digits-prod", "ap-southeast-2", api, Auth.IAM, url + "/", "digits-fn"))
        env = clean_env(**CREDENTIALS, AWS_REGION="us-east-1")  # the record's region wins over the machine's
        by_name = lambdafit("invoke", "digits-prod", cwd=tmp_path, env=env)
        assert by_name.returncode == 0, by_name.stdout + by_name.stderr
        assert f"row 0: {first_digit()}" in by_name.stdout and f"(SigV4 {service} ap-southeast-2)" in by_name.stderr
        by_bundle = lambdafit("invoke", str(bundle), "--deployed", "--json", cwd=tmp_path, env=env)
        assert json.loads(by_bundle.stdout)["status"] == 200
    unknown = lambdafit("invoke", "nope", cwd=tmp_path, env=env)
    assert unknown.returncode == 2 and "is not a URL, a bundle folder, or a stack deployed" in unknown.stderr
