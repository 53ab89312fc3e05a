"""Every template the packager can render, checked by the real tools: `sam validate --lint` (cfn-lint),
aws-sam-translator's transform (what CloudFormation will create), and checkov (zero failed checks)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from moto import mock_aws

from handlers.contract import ApiKind, RuntimeSettings, S3Uri
from handlers.routes import ROUTES
from packager.config import Arch, Auth, PackageType
from packager.template import AppModel, render_template, to_yaml

BIN = Path(sys.executable).parent
MATRIX = [(package, api, Arch.X86_64, Auth.IAM) for package in PackageType for api in ApiKind] + [
    (PackageType.IMAGE, ApiKind.REST, Arch.ARM64, Auth.API_KEY),
    (PackageType.ZIP, ApiKind.HTTP, Arch.ARM64, Auth.NONE),
]
IDS = [f"{p.value}-{a.value}-{arch.value}-{auth.value}" for p, a, arch, auth in MATRIX]


def app_model(package: PackageType, api: ApiKind, arch: Arch, auth: Auth) -> AppModel:
    return AppModel(
        name="digits", description="matrix", code_dir="./function", python="3.12", arch=arch, memory_mb=512,
        package_type=package, api=api, auth=auth, model_bytes=5_000_000,
        settings=RuntimeSettings(model_uri=S3Uri.parse("s3://models/digits/abc/model.onnx")),
        reserved_concurrency=10, provisioned_concurrency=1,
    )  # fmt: skip


def env() -> dict[str, str]:
    return os.environ | {"SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                         "AWS_SECRET_ACCESS_KEY": "testing", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}  # fmt: skip


def translate(template: dict[str, Any]) -> dict[str, Any]:
    """aws-sam-translator's own transform (the loader's IAM calls go to moto, never to AWS)."""
    import boto3
    from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
    from samtranslator.translator.transform import transform

    packaged = copy.deepcopy(template)
    for resource in packaged["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":  # the artifact locations `sam package` fills in
            if resource["Properties"]["PackageType"] == "Image":
                resource["Properties"]["ImageUri"] = "123456789012.dkr.ecr.us-east-1.amazonaws.com/digits:python3.12-v1"
            else:
                resource["Properties"]["CodeUri"] = "s3://artifacts/digits.zip"
    with mock_aws():
        loader = ManagedPolicyLoader(boto3.client("iam", region_name="us-east-1"))
        return transform(packaged, {}, loader)


@pytest.mark.parametrize(("package", "api", "arch", "auth"), MATRIX, ids=IDS)
def test_template_passes_sam_validate_lint_and_checkov(
    tmp_path: Path, package: PackageType, api: ApiKind, arch: Arch, auth: Auth
) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(to_yaml(render_template(app_model(package, api, arch, auth))))
    validate = subprocess.run(
        [str(BIN / "sam"), "validate", "--lint", "-t", str(path)],
        capture_output=True,
        text=True,
        env=env(),
        check=False,
    )
    assert validate.returncode == 0, validate.stdout + validate.stderr
    scan = subprocess.run(
        [str(BIN / "checkov"), "-f", str(path), "--framework", "cloudformation", "--skip-download", "-o", "json"],
        capture_output=True, text=True, env=env(), check=False,
    )  # fmt: skip
    report = json.loads(scan.stdout)
    assert report["summary"]["parsing_errors"] == 0 and report["summary"]["passed"] > 0
    failed = [(f["check_id"], f["resource"]) for f in report["results"]["failed_checks"]]
    assert failed == []
    skipped = report["results"]["skipped_checks"]
    assert all(s["check_result"]["suppress_comment"] for s in skipped), "every skip says why, in the template"


@pytest.mark.parametrize(("package", "api", "arch", "auth"), MATRIX, ids=IDS)
def test_transform_shows_the_wiring(
    monkeypatch: pytest.MonkeyPatch, package: PackageType, api: ApiKind, arch: Arch, auth: Auth
) -> None:
    for name, value in env().items():
        if name.startswith("AWS_") and name != "AWS_ENDPOINT_URL":
            monkeypatch.setenv(name, value)
    resources = translate(render_template(app_model(package, api, arch, auth)))["Resources"]
    by_type: dict[str, list[dict[str, Any]]] = {}
    for resource in resources.values():
        by_type.setdefault(resource["Type"], []).append(resource)
    [alias] = by_type["AWS::Lambda::Alias"]
    assert alias["Properties"]["Name"] == "live"
    assert alias["Properties"]["ProvisionedConcurrencyConfig"] == {"ProvisionedConcurrentExecutions": 1}
    [group] = by_type["AWS::CodeDeploy::DeploymentGroup"]
    alarms = group["Properties"]["AlarmConfiguration"]["Alarms"]
    assert {json.dumps(a["Name"]) for a in alarms} == {'{"Ref": "DigitsErrorsAlarm"}', '{"Ref": "DigitsLatencyAlarm"}'}
    [function] = by_type["AWS::Lambda::Function"]
    assert function["Properties"]["Architectures"] == [arch.value]
    assert function["Properties"]["ReservedConcurrentExecutions"] == 10
    [role] = [
        r
        for r in by_type["AWS::IAM::Role"]
        if "lambda.amazonaws.com" in json.dumps(r["Properties"]["AssumeRolePolicyDocument"])
    ]
    statements = [s for p in role["Properties"].get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
    assert {
        "Effect": "Allow",
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::models/digits/abc/model.onnx",
    } in statements
    assert not any(s.get("Resource") == "*" and "s3" in json.dumps(s.get("Action")) for s in statements)
    permissions = by_type.get("AWS::Lambda::Permission", [])
    if api is ApiKind.FUNCTION_URL:
        [url] = by_type["AWS::Lambda::Url"]
        assert url["Properties"]["AuthType"] == ("AWS_IAM" if auth is Auth.IAM else "NONE")
    else:
        assert permissions and all(p["Properties"]["Principal"] == "apigateway.amazonaws.com" for p in permissions)
        assert all("Ref" in json.dumps(p["Properties"]["FunctionName"]) for p in permissions)
    if api is ApiKind.REST:
        [rest] = by_type["AWS::ApiGateway::RestApi"]
        body = rest["Properties"]["Body"]
        operations = [op for path in body["paths"].values() for op in path.values()]
        assert len(operations) == len(ROUTES) + 1  # every route, and the catch-all for the handler's 404
        names = {name for op in operations for requirement in op.get("security", []) for name in requirement}
        if auth is Auth.IAM:
            assert names == {"AWS_IAM"}
            assert body["securityDefinitions"]["AWS_IAM"]["x-amazon-apigateway-authtype"] == "awsSigv4"
        elif auth is Auth.API_KEY:
            assert names == {"api_key"}
            assert by_type["AWS::ApiGateway::UsagePlan"] and by_type["AWS::ApiGateway::ApiKey"]
        [stage] = by_type["AWS::ApiGateway::Stage"]
        assert stage["Properties"]["TracingEnabled"] is True and "AccessLogSetting" in stage["Properties"]


def test_generated_yaml_round_trips() -> None:
    template = render_template(app_model(PackageType.IMAGE, ApiKind.REST, Arch.X86_64, Auth.IAM))
    assert yaml.safe_load(to_yaml(template)) == template
