"""The README's path for a new user, run as written: init -> pack from the file -> serve -> invoke with an
image file -> deploy, logs, delete, as far as they run offline (a moto_server on loopback, through
AWS_ENDPOINT_URL). What moto cannot do is asserted as such here and written down in docs/deploy-offline.md."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import numpy as np

from tests.conftest import DIGITS, ROOT
from tests.functional.conftest import Moto, Project, free_port, lambdafit, wait_for

README = (ROOT / "README.md").read_text()


def client(moto: Moto, service: str) -> Any:
    return boto3.client(service, endpoint_url=moto.endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip


def test_the_readme_shows_this_path() -> None:
    for line in ("lambdafit init examples/digits/model.py:build", "lambdafit pack", "lambdafit serve build/digits",
                 "lambdafit invoke http://127.0.0.1:3000 --image build/digits/requests/sample.png",
                 "lambdafit deploy build/digits", "lambdafit invoke digits", "lambdafit delete build/digits"):  # fmt: skip
        assert line in README, line


def test_init_writes_the_options_and_what_it_found(project: Project) -> None:
    text = (project.folder / "lambdafit.toml").read_text()
    assert "#     x: float32[batch, 64]\n# and returns:\n#     logits: float32[batch, 10]" in text
    assert 'model = "examples/digits/model.py:build"\nname = "digits"' in text
    assert 'eval-data = "examples/digits/eval.npz"' in text and 'calibration-data = "examples/digits/train.npz"' in text
    assert "wrote lambdafit.toml" in project.init.stdout


def test_pack_reads_the_file(project: Project) -> None:
    assert f"options from {project.folder / 'lambdafit.toml'}" in project.pack.stderr
    assert re.search(r"^slim ", project.pack.stdout, re.MULTILINE), project.pack.stdout  # the file's recipes
    assert re.search(r"chose (slim|fp32):", project.pack.stdout) and "wrote build/digits" in project.pack.stdout
    app = json.loads((project.bundle / "bundle.json").read_text())["app"]
    assert (app["package_type"], app["api"], app["auth"]) == ("zip", "http", "iam")
    manifest = json.loads((project.bundle / "function" / "model" / "manifest.json").read_text())
    assert manifest["preprocessing"]["kind"] == "image"


def test_serve_then_invoke_with_an_image_file(project: Project) -> None:
    port = free_port()
    serve = subprocess.Popen(
        [sys.executable, "-m", "packager.cli", "serve", "build/digits", "--port", str(port)],
        cwd=project.folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ | {"PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        wait_for(f"http://127.0.0.1:{port}/health")
        url = f"http://127.0.0.1:{port}"
        result = lambdafit("invoke", url, "--image", "build/digits/requests/sample.png", cwd=project.folder)
        assert result.returncode == 0, result.stderr
        label = str(int(np.load(DIGITS / "eval.npz")["labels"][0]))
        assert re.search(rf"^row 0: {label}  score 1\.000", result.stdout, re.M), result.stdout
        raw = (project.bundle / "requests" / "sample.png").read_bytes()  # what curl --data-binary @... sends
        request = urllib.request.Request(url + "/predict", data=raw, headers={"Content-Type": "image/png"})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert json.loads(response.read())["predictions"][0]["label"] == label
    finally:
        serve.terminate()
        serve.wait(timeout=30)


def test_deploy_logs_delete_against_moto(project: Project, moto: Moto, tmp_path: Path) -> None:
    """What runs: sam build (the zip, by its Makefile), sam package (the zip to moto's S3), the SAM
    transform here (--pretranslate), sam deploy (change set, stack CREATE_COMPLETE), sam list
    stack-outputs, sam logs, sam delete. What moto does not create: the HTTP API, the alias, alarms and
    CodeDeploy, so the Endpoint output does not resolve and deploy says so (exit 1)."""
    bundle = tmp_path / "digits"
    shutil.copytree(project.bundle, bundle)
    deployed = lambdafit("deploy", str(bundle), "--pretranslate", "--yes", cwd=tmp_path, env=moto.env)
    assert deployed.returncode == 1, deployed.stdout[-3000:] + deployed.stderr[-3000:]
    assert "Successfully created/updated stack - digits in us-east-1" in deployed.stdout
    assert f"deployed stack digits in us-east-1 at {moto.endpoint}; function digits-DigitsFunction-" in deployed.stdout
    assert "no endpoint: the stack's Endpoint output did not resolve (https://${DigitsHttpApi}" in deployed.stdout
    record = json.loads((bundle / "deployment.json").read_text())
    assert record | {"deployed_at": "", "function_name": ""} == {
        "stack_name": "digits", "region": "us-east-1", "api": "http", "auth": "iam", "endpoint": None,
        "function_name": "", "aws_endpoint_url": moto.endpoint, "deployed_at": "",
        "outputs": {"Endpoint": "https://${DigitsHttpApi}.execute-api.us-east-1.amazonaws.com/",
                    "FunctionName": record["function_name"], "Auth": record["outputs"]["Auth"]},
    }  # fmt: skip
    assert record["outputs"]["Auth"].startswith("iam: every route needs a SigV4-signed request")

    function = client(moto, "lambda").get_function(FunctionName=record["function_name"])["Configuration"]
    memory = json.loads((bundle / "report.json").read_text())["cost"]["memory_mb"]  # the sweep's choice
    assert (function["Runtime"], function["Handler"], function["MemorySize"], function["Timeout"]) == (
        "python3.11", "handlers.lambda_function.lambda_handler", memory, 29)  # fmt: skip
    assert function["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == "digits"
    assert function["CodeSize"] > 40_000_000  # the zip sam package uploaded to moto's S3
    resources = client(moto, "cloudformation").list_stack_resources(StackName="digits")["StackResourceSummaries"]
    created = {r["ResourceType"] for r in resources if r.get("PhysicalResourceId")}
    assert created >= {"AWS::Lambda::Function", "AWS::IAM::Role", "AWS::Logs::LogGroup"}
    assert "AWS::ApiGatewayV2::Api" not in created and "AWS::Lambda::Alias" not in created

    group = f"/aws/lambda/{record['function_name']}"
    logs = client(moto, "logs")
    logs.create_log_stream(logGroupName=group, logStreamName="2026/12/01/[$LATEST]abc")
    now = int(time.time() * 1000)
    logs.put_log_events(logGroupName=group, logStreamName="2026/12/01/[$LATEST]abc", logEvents=[
        {"timestamp": now, "message": '{"level":"INFO","message":"model loaded"}'},
        {"timestamp": now + 1, "message": '{"level":"ERROR","message":"model failed to load"}'},
    ])  # fmt: skip
    shown = lambdafit("logs", str(bundle), "--filter", "ERROR", cwd=tmp_path, env=moto.env)
    assert shown.returncode == 0, shown.stderr
    assert '"message": "model failed to load"' in shown.stdout and "model loaded" not in shown.stdout

    called = lambdafit("invoke", "digits", cwd=tmp_path.parent, env=moto.env)
    assert called.returncode == 2 and "is not a URL, a bundle folder, or a stack deployed" in called.stderr
    called = lambdafit("invoke", str(bundle), "--deployed", cwd=tmp_path, env=moto.env)
    assert called.returncode == 2 and "has no resolved Endpoint output" in called.stderr

    deleted = lambdafit("delete", str(bundle), "--yes", cwd=tmp_path, env=moto.env)
    assert deleted.returncode == 0, deleted.stderr
    assert "deleted stack digits" in deleted.stdout and not (bundle / "deployment.json").exists()
    stacks = client(moto, "cloudformation").list_stacks()["StackSummaries"]
    assert {s["StackStatus"] for s in stacks if s["StackName"] == "digits"} == {"DELETE_COMPLETE"}


def test_a_rest_api_stack_does_not_deploy_on_moto_and_deploy_says_which_step_failed(
    project: Project, moto: Moto, tmp_path: Path
) -> None:
    """moto's CloudFormation creates an AWS::ApiGateway::RestApi only from a Name (SAM's has a Body) and
    fails the change set with KeyError 'Name': the stack never completes and nothing is kept."""
    from packager.bundle import read_app, write_info
    from packager.template import render_template, to_yaml

    bundle = tmp_path / "digits"
    shutil.copytree(project.bundle, bundle)
    from handlers.contract import ApiKind

    app = dataclasses.replace(read_app(bundle), api=ApiKind.REST)  # what pack --api rest writes
    (bundle / "template.yaml").write_text(to_yaml(render_template(app)))
    write_info(bundle, app)
    deployed = lambdafit("deploy", str(bundle), "--pretranslate", "--yes", "--stack-name", "digits-rest",
                         cwd=tmp_path, env=moto.env)  # fmt: skip
    assert deployed.returncode == 2
    assert "error: sam deploy failed (exit 1); its output above says why" in deployed.stderr
    assert "Changeset created successfully" in deployed.stdout
    assert not (bundle / "deployment.json").exists()
    stack = client(moto, "cloudformation").describe_stacks(StackName="digits-rest")["Stacks"][0]
    assert stack["StackStatus"] == "REVIEW_IN_PROGRESS"


def test_the_note_documents_what_moto_cannot_deploy() -> None:
    note = (ROOT / "docs" / "deploy-offline.md").read_text()
    for fact in ("KeyError: 'Name'", "AWS::Lambda::Alias", "Fn::GetAtt references undefined resource",
                 "ECR", "--pretranslate", "http://localhost:"):  # fmt: skip
        assert fact in note, fact
