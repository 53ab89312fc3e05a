from __future__ import annotations

import json
import tomllib

import pytest
import yaml

from handlers.contract import ApiKind, RuntimeSettings, S3Uri
from handlers.routes import ROUTES
from packager.config import Arch, Auth, PackageType
from packager.template import AppModel, render_samconfig, render_template
from tests.conftest import ROOT

EXAMPLE = {
    "name": "digits",
    "description": "lambdafit example endpoint: the digits CNN (make demo packs build/digits)",
    "code_dir": "./build/digits/function",
    "python": "3.13",
    "arch": Arch.X86_64,
    "memory_mb": 512,
    "settings": RuntimeSettings(service="digits", metrics=True),
}


def model(**changes: object) -> AppModel:
    return AppModel(**(EXAMPLE | changes))  # type: ignore[arg-type]


def test_root_template_is_what_the_packager_renders_for_the_example() -> None:
    committed = yaml.safe_load((ROOT / "template.yaml").read_text())
    assert committed == render_template(model())


def test_rest_api_is_closed_by_iam_and_throttled() -> None:
    template = render_template(model(name="my-model", arch=Arch.ARM64, memory_mb=2048))
    resources = template["Resources"]
    fn = resources["MyModelFunction"]["Properties"]
    assert fn["Architectures"] == ["arm64"] and fn["MemorySize"] == 2048
    assert fn["AutoPublishAlias"] == "live"
    assert fn["DeploymentPreference"]["Alarms"] == [
        {"Ref": "MyModelServerErrorsAlarm"},
        {"Ref": "MyModelErrorsAlarm"},
        {"Ref": "MyModelLatencyAlarm"},
    ]
    api = resources["MyModelApi"]["Properties"]
    assert api["Auth"] == {"DefaultAuthorizer": "AWS_IAM", "InvokeRole": "NONE"}
    assert api["MethodSettings"][0]["ThrottlingRateLimit"] == 50
    events = {(e["Properties"]["Path"], e["Properties"]["Method"]) for e in fn["Events"].values()}
    assert events == {(r.path, r.method.lower()) for r in ROUTES} | {("/{proxy+}", "any")}
    assert {("/predict", "post"), ("/v2/models/{name}/infer", "post")} < events
    assert resources["MyModelLogs"]["Properties"]["RetentionInDays"] == 30


def test_api_key_auth_creates_a_usage_plan() -> None:
    api = render_template(model(auth=Auth.API_KEY))["Resources"]["DigitsApi"]["Properties"]
    assert api["Auth"]["ApiKeyRequired"] is True
    assert api["Auth"]["UsagePlan"]["CreateUsagePlan"] == "PER_API"


@pytest.mark.parametrize(("auth", "url_auth"), [(Auth.IAM, "AWS_IAM"), (Auth.NONE, "NONE")])
def test_function_url(auth: Auth, url_auth: str) -> None:
    template = render_template(model(api=ApiKind.FUNCTION_URL, auth=auth))
    fn = template["Resources"]["DigitsFunction"]["Properties"]
    assert fn["FunctionUrlConfig"] == {"AuthType": url_auth}
    assert fn["Events"] == {}
    assert template["Outputs"]["Endpoint"]["Value"] == {"Fn::Sub": "${DigitsFunctionUrl.FunctionUrl}"}


def test_model_in_s3_gets_tmp_space_and_read_access_to_that_object_only() -> None:
    uri = S3Uri.parse("s3://models/digits/abc/model.onnx")
    fn = render_template(model(settings=RuntimeSettings(model_uri=uri), model_bytes=2_000_000_000))
    props = fn["Resources"]["DigitsFunction"]["Properties"]
    assert props["Environment"]["Variables"]["MODEL_URI"] == "s3://models/digits/abc/model.onnx"
    assert props["EphemeralStorage"] == {"Size": 4256}
    assert props["Policies"] == [
        {
            "Statement": [
                {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::models/digits/abc/model.onnx"}
            ]
        }
    ]


def test_zip_function_builds_with_its_makefile() -> None:
    fn = render_template(model(package_type=PackageType.ZIP))["Resources"]["DigitsFunction"]
    assert fn["Properties"]["Runtime"] == "python3.13"
    assert fn["Properties"]["Handler"] == "handlers.lambda_function.lambda_handler"
    assert fn["Metadata"]["BuildMethod"] == "makefile"


def test_samconfig_names_the_stack() -> None:
    config = tomllib.loads(render_samconfig("digits"))
    assert config["default"]["global"]["parameters"]["stack_name"] == "digits"
    assert config["default"]["deploy"]["parameters"]["capabilities"] == "CAPABILITY_IAM"


def test_tracing_turns_on_the_tracer_and_vendors_its_sdk() -> None:
    from packager.wheels import runtime_requirements

    variables = render_template(model(settings=RuntimeSettings(tracing=True)))["Resources"]["DigitsFunction"][
        "Properties"
    ]["Environment"]
    assert variables["Variables"]["LAMBDAFIT_TRACING"] == "true"
    assert (
        "LAMBDAFIT_TRACING"
        not in render_template(model())["Resources"]["DigitsFunction"]["Properties"]["Environment"]["Variables"]
    )
    assert "aws-xray-sdk==2.15.0" in runtime_requirements(("tracing",))
    assert not any(r.startswith("aws-xray-sdk") for r in runtime_requirements())
    assert "Pillow==13.0.0" in runtime_requirements(("image",))


def test_app_model_round_trips_through_bundle_json() -> None:
    from packager.template import AppModel

    app = model(api=ApiKind.HTTP, auth=Auth.NONE, settings=RuntimeSettings(tracing=True, service="digits"))
    assert AppModel.from_dict(json.loads(json.dumps(app.to_dict()))) == app
