"""The SAM application: one resource model, rendered to template.yaml and samconfig.toml."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from packager.config import Arch, PackageType

LAMBDA_TIMEOUT_S = 29
"""API Gateway REST's integration timeout: a longer function timeout would only hide 504s."""


@dataclass(frozen=True)
class FunctionModel:
    name: str
    description: str
    code_dir: str
    python: str
    arch: Arch
    memory_mb: int
    timeout_s: int = LAMBDA_TIMEOUT_S
    package_type: PackageType = PackageType.IMAGE

    @property
    def logical_id(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("-")) + "Function"


def render_template(fn: FunctionModel) -> dict[str, Any]:
    routes = {
        "Predict": ("/predict", "post"),
        "Health": ("/health", "get"),
        "Everything": ("/{proxy+}", "any"),
    }
    events = {
        key: {"Type": "Api", "Properties": {"Path": path, "Method": method}} for key, (path, method) in routes.items()
    }
    function: dict[str, Any] = {
        "Type": "AWS::Serverless::Function",
        "Properties": {
            "PackageType": "Image" if fn.package_type is PackageType.IMAGE else "Zip",
            "Architectures": [fn.arch.value],
            "Environment": {
                "Variables": {
                    "LAMBDAFIT_API": "rest",
                    "POWERTOOLS_SERVICE_NAME": fn.name,
                    "POWERTOOLS_LOG_LEVEL": "INFO",
                }
            },
            "Events": events,
        },
    }
    if fn.package_type is PackageType.IMAGE:
        function["Metadata"] = {
            "DockerContext": fn.code_dir,
            "Dockerfile": "Dockerfile",
            "DockerTag": f"python{fn.python}-v1",
        }
    else:
        function["Properties"] |= {
            "CodeUri": fn.code_dir,
            "Handler": "handlers.lambda_function.lambda_handler",
            "Runtime": f"python{fn.python}",
        }
        # The folder already holds the vendored, slimmed dependencies; SAM's Python builder would drop
        # their *.so files, so `sam build` runs the folder's Makefile, which copies it as it is.
        function["Metadata"] = {"BuildMethod": "makefile"}
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": "AWS::Serverless-2016-10-31",
        "Description": fn.description,
        "Globals": {"Function": {"Timeout": fn.timeout_s, "MemorySize": fn.memory_mb}},
        "Resources": {fn.logical_id: function},
        "Outputs": {
            "Endpoint": {
                "Description": "Base URL of the API: POST {Endpoint}predict",
                "Value": {"Fn::Sub": "https://${ServerlessRestApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/Prod/"},
            },
            "FunctionName": {"Description": "The inference function", "Value": {"Ref": fn.logical_id}},
        },
    }


def to_yaml(template: dict[str, Any]) -> str:
    import yaml

    return str(yaml.safe_dump(template, sort_keys=False, default_flow_style=False, width=120))


def render_samconfig(stack_name: str) -> str:
    """`sam deploy` then needs nothing but the region the user picks (or their default profile's)."""
    return "\n".join(
        [
            "version = 0.1",
            "",
            "[default.global.parameters]",
            f'stack_name = "{stack_name}"',
            "",
            "[default.build.parameters]",
            "cached = true",
            "",
            "[default.deploy.parameters]",
            'capabilities = "CAPABILITY_IAM"',
            "confirm_changeset = true",
            "resolve_s3 = true",
            "resolve_image_repos = true",
            "",
        ]
    )
