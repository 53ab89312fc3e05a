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
    (PackageType.ZIP, ApiKind.REST, Arch.X86_64, Auth.NONE),
    (PackageType.IMAGE, ApiKind.FUNCTION_URL, Arch.ARM64, Auth.NONE),
]
"""Every front door with every auth it can enforce (AUTH_BY_API), each package type and architecture."""
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


def assert_the_tools_pass(template: dict[str, Any], folder: Path) -> None:
    """`sam validate --lint` (cfn-lint) exits 0, and checkov parses the template, fails no check, and
    every check it skips has its reason written in the template."""
    path = folder / "template.yaml"
    path.write_text(to_yaml(template))
    validate = subprocess.run([str(BIN / "sam"), "validate", "--lint", "-t", str(path)], capture_output=True,
                              text=True, env=env(), check=False)  # fmt: skip
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
def test_template_passes_sam_validate_lint_and_checkov(
    tmp_path: Path, package: PackageType, api: ApiKind, arch: Arch, auth: Auth
) -> None:
    assert_the_tools_pass(render_template(app_model(package, api, arch, auth)), tmp_path)


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
    assert [a["Name"] for a in alarms] == [
        {"Ref": "DigitsServerErrorsAlarm"},
        {"Ref": "DigitsErrorsAlarm"},
        {"Ref": "DigitsLatencyAlarm"},
    ]
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
        assert url["Properties"]["TargetFunctionArn"] == {"Ref": "DigitsFunctionAliaslive"}
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


COMBINATIONS = [(api, auth) for api in ApiKind for auth in Auth]


def enforced(resources: dict[str, Any]) -> set[str]:
    """What the transformed CloudFormation makes a caller show on every route, read off what API
    Gateway and Lambda will create: {'AWS_IAM'}, {'api_key'} or {'none'} (a mix would be a hole)."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for resource in resources.values():
        by_type.setdefault(resource["Type"], []).append(resource)
    if "AWS::Lambda::Url" in by_type:
        [url] = by_type["AWS::Lambda::Url"]
        public = [p for p in by_type.get("AWS::Lambda::Permission", []) if p["Properties"]["Principal"] == "*"]
        if url["Properties"]["AuthType"] == "AWS_IAM":
            assert public == [], "an IAM function URL grants nobody public access"
            return {"AWS_IAM"}
        assert url["Properties"]["AuthType"] == "NONE" and len(public) == 2
        return {"none"}
    [api] = by_type.get("AWS::ApiGateway::RestApi", []) + by_type.get("AWS::ApiGatewayV2::Api", [])
    body = api["Properties"]["Body"]
    schemes = body.get("securityDefinitions") or body.get("components", {}).get("securitySchemes") or {}
    found = set()
    for methods in body["paths"].values():
        for operation in methods.values():
            integration = operation["x-amazon-apigateway-integration"]
            assert "credentials" not in integration, "API Gateway must not call Lambda with the caller's credentials"
            names = [name for requirement in operation.get("security", []) for name in requirement]
            assert len(names) <= 1
            found |= set(names) or {"none"}
    if "AWS_IAM" in found:
        assert schemes["AWS_IAM"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    if "api_key" in found:
        assert schemes["api_key"] == {"type": "apiKey", "name": "x-api-key", "in": "header"}
        [plan] = by_type["AWS::ApiGateway::UsagePlan"]
        [key] = by_type["AWS::ApiGateway::ApiKey"]
        [link] = by_type["AWS::ApiGateway::UsagePlanKey"]
        assert plan["Properties"]["ApiStages"][0]["ApiId"] == {"Ref": "DigitsApi"}
        assert key["Properties"]["Enabled"] is True and key["Properties"]["StageKeys"][0]["RestApiId"] == {
            "Ref": "DigitsApi"
        }
        assert link["Properties"]["KeyType"] == "API_KEY"
    return found


@pytest.mark.parametrize(("api", "auth"), COMBINATIONS, ids=[f"{a.value}-{b.value}" for a, b in COMBINATIONS])
def test_class1_every_api_and_auth_enforces_what_it_names_or_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, api: ApiKind, auth: Auth
) -> None:
    from packager.config import AUTH_BY_API, PackConfig
    from packager.errors import LambdafitError

    if auth not in AUTH_BY_API[api]:
        every = [
            "--api rest with --auth iam|api-key|none",
            "--api http with --auth iam|none",
            "--api url with --auth iam|none",
        ]
        with pytest.raises(LambdafitError) as refused:
            PackConfig(model="m.onnx", name="digits", api=api, auth=auth)
        assert f"--api {api.value} cannot enforce --auth {auth.value}" in str(refused.value)
        assert all(combination in str(refused.value) for combination in every)
        with pytest.raises(LambdafitError, match="cannot enforce"):
            app_model(PackageType.ZIP, api, Arch.X86_64, auth)
        result = subprocess.run(
            [sys.executable, "-m", "packager.cli", "pack", "missing.onnx", "--name", "digits", "--output", str(tmp_path),
             "--api", api.value, "--auth", auth.value],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        assert result.returncode == 2 and "cannot enforce" in result.stderr and "Traceback" not in result.stderr
        assert list(tmp_path.iterdir()) == []
        return
    for name, value in env().items():
        if name.startswith("AWS_") and name != "AWS_ENDPOINT_URL":
            monkeypatch.setenv(name, value)
    template = translate(render_template(app_model(PackageType.ZIP, api, Arch.X86_64, auth)))
    expected = {Auth.IAM: "AWS_IAM", Auth.API_KEY: "api_key", Auth.NONE: "none"}[auth]
    assert enforced(template["Resources"]) == {expected}
    assert template["Outputs"]["Auth"]["Value"].startswith(f"{auth.value}: ")
    assert ("ApiKeyId" in template["Outputs"]) == (auth is Auth.API_KEY)


def test_class1_the_enforcement_check_sees_a_caller_credentials_passthrough(monkeypatch: pytest.MonkeyPatch) -> None:
    """SAM's default InvokeRole makes API Gateway call Lambda as the caller; the check above catches it."""
    for name, value in env().items():
        if name.startswith("AWS_") and name != "AWS_ENDPOINT_URL":
            monkeypatch.setenv(name, value)
    template = render_template(app_model(PackageType.ZIP, ApiKind.REST, Arch.X86_64, Auth.IAM))
    del template["Resources"]["DigitsApi"]["Properties"]["Auth"]["InvokeRole"]
    with pytest.raises(AssertionError, match="caller's credentials"):
        enforced(translate(template)["Resources"])


def test_class6_rollback_alarms_watch_the_new_version_and_the_metric_the_handler_emits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from handlers.contract import DIMENSION_SERVICE, DIMENSION_VERSION, METRIC_SERVER_ERRORS

    for name, value in env().items():
        if name.startswith("AWS_") and name != "AWS_ENDPOINT_URL":
            monkeypatch.setenv(name, value)
    resources = translate(render_template(app_model(PackageType.IMAGE, ApiKind.REST, Arch.X86_64, Auth.IAM)))[
        "Resources"
    ]
    [(version_id, _)] = [(k, r) for k, r in resources.items() if r["Type"] == "AWS::Lambda::Version"]
    new_version = {"Fn::GetAtt": [version_id, "Version"]}
    assert resources["DigitsFunctionAliaslive"]["Properties"]["FunctionVersion"] == new_version
    server = resources["DigitsServerErrorsAlarm"]["Properties"]
    assert (server["Namespace"], server["MetricName"]) == ("lambdafit", METRIC_SERVER_ERRORS)
    assert server["Dimensions"] == [
        {"Name": DIMENSION_SERVICE, "Value": "lambdafit"},  # the function's service name: versions of other
        {"Name": DIMENSION_VERSION, "Value": new_version},  # endpoints in the namespace are not this one's
    ]
    assert (server["Statistic"], server["Threshold"], server["ComparisonOperator"]) == (
        "Sum", 1, "GreaterThanOrEqualToThreshold",
    )  # fmt: skip
    assert server["Period"] * server["EvaluationPeriods"] <= 300, "fires inside the 5-minute canary"
    for alarm, metric in (("DigitsErrorsAlarm", "Errors"), ("DigitsLatencyAlarm", "Duration")):
        properties = resources[alarm]["Properties"]
        assert (properties["Namespace"], properties["MetricName"]) == ("AWS/Lambda", metric)
        assert {d["Name"]: d["Value"] for d in properties["Dimensions"]} == {
            "FunctionName": {"Ref": "DigitsFunction"},
            "Resource": {"Fn::Sub": "${DigitsFunction}:live"},
            "ExecutedVersion": new_version,
        }
    group = resources["DigitsFunctionDeploymentGroup"]["Properties"]
    assert "DEPLOYMENT_STOP_ON_ALARM" in group["AutoRollbackConfiguration"]["Events"]
