"""A text-generation bundle's template, checked by the real tools: streaming front doors (REST with
responseTransferMode STREAM on every integration, a function URL in RESPONSE_STREAM mode; HTTP APIs
buffer), the /v1 routes only, the timeout beyond 29 s only where the front door streams, the exec wrapper
for a streaming zip, and the same auth and checks as every other bundle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from handlers.contract import ENV_EXEC_WRAPPER, ApiKind, RuntimeSettings, stream_wrapper_path
from handlers.manifest import Task
from handlers.routes import GENERATION_ROUTES
from packager.config import Arch, Auth, PackageType
from packager.template import AppModel, render_template
from tests.functional.test_template_matrix import assert_the_tools_pass, env, translate

MATRIX = [
    (PackageType.IMAGE, ApiKind.REST, Auth.IAM),
    (PackageType.ZIP, ApiKind.FUNCTION_URL, Auth.IAM),
    (PackageType.IMAGE, ApiKind.FUNCTION_URL, Auth.NONE),
    (PackageType.ZIP, ApiKind.REST, Auth.API_KEY),
    (PackageType.IMAGE, ApiKind.HTTP, Auth.IAM),
]
IDS = [f"{p.value}-{a.value}-{auth.value}" for p, a, auth in MATRIX]


def app_model(package: PackageType, api: ApiKind, auth: Auth) -> AppModel:
    streaming = api is not ApiKind.HTTP
    return AppModel(
        name="jargon", description="generation", code_dir="./function", python="3.12", arch=Arch.X86_64,
        memory_mb=1024, timeout_s=300 if streaming else 29, package_type=package, api=api, auth=auth,
        settings=RuntimeSettings(stream_runtime=streaming and package is PackageType.ZIP), task=Task.TEXT_GENERATION,
    )  # fmt: skip


@pytest.mark.parametrize(("package", "api", "auth"), MATRIX, ids=IDS)
def test_generation_template_passes_sam_validate_lint_and_checkov(
    tmp_path: Path, package: PackageType, api: ApiKind, auth: Auth
) -> None:
    assert_the_tools_pass(render_template(app_model(package, api, auth)), tmp_path)


@pytest.mark.parametrize(("package", "api", "auth"), MATRIX, ids=IDS)
def test_the_transform_streams_where_the_front_door_can(
    monkeypatch: pytest.MonkeyPatch, package: PackageType, api: ApiKind, auth: Auth
) -> None:
    for name, value in env().items():
        if name.startswith("AWS_") and name != "AWS_ENDPOINT_URL":
            monkeypatch.setenv(name, value)
    app = app_model(package, api, auth)
    resources = translate(render_template(app))["Resources"]
    by_type: dict[str, list[dict[str, Any]]] = {}
    for resource in resources.values():
        by_type.setdefault(resource["Type"], []).append(resource)
    [function] = by_type["AWS::Lambda::Function"]
    variables = function["Properties"]["Environment"]["Variables"]
    assert (variables.get(ENV_EXEC_WRAPPER) == stream_wrapper_path()) == (app.streaming and package is PackageType.ZIP)
    assert function["Properties"]["Timeout"] == (300 if app.streaming else 29)
    if api is ApiKind.REST:
        [rest] = by_type["AWS::ApiGateway::RestApi"]
        paths = rest["Properties"]["Body"]["paths"]
        assert set(paths) == {route.path for route in GENERATION_ROUTES} | {"/{proxy+}"}
        for operation in (op for path in paths.values() for op in path.values()):
            integration = operation["x-amazon-apigateway-integration"]
            assert integration["responseTransferMode"] == "STREAM"
            assert integration["timeoutInMillis"] == 300_000
            assert "/2021-11-15/functions/" in json.dumps(integration["uri"])
            assert "/response-streaming-invocations" in json.dumps(integration["uri"])
    elif api is ApiKind.FUNCTION_URL:
        [url] = by_type["AWS::Lambda::Url"]
        assert url["Properties"]["InvokeMode"] == "RESPONSE_STREAM"
        assert url["Properties"]["AuthType"] == ("AWS_IAM" if auth is Auth.IAM else "NONE")
    else:
        [http] = by_type["AWS::ApiGatewayV2::Api"]
        assert "/v1/chat/completions" in http["Properties"]["Body"]["paths"]
        assert "STREAM" not in json.dumps(http)
