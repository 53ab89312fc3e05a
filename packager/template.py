"""The SAM application: one resource model (`AppModel`), rendered to template.yaml and samconfig.toml.

One `_render_<part>` function per part of the stack, in the manner of Chalice's SAM generator: the
function, its API front (REST API, HTTP API or function URL), its access control, its log group, the
alarms that roll a canary deployment back, and the outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from handlers.contract import HANDLER, ApiKind, RuntimeSettings
from handlers.routes import ROUTES, Route
from packager.config import Arch, Auth, PackageType
from packager.snapstart import SnapStartError
from packager.snapstart import conflicts as snapstart_conflicts

LAMBDA_TIMEOUT_S = 29
"""API Gateway REST's integration timeout: a longer function timeout would only hide 504s."""
ALIAS = "live"
STAGE = "Prod"
LOG_RETENTION_DAYS = 30
ACCESS_LOG_FORMAT = (
    '{"requestId":"$context.requestId","ip":"$context.identity.sourceIp","method":"$context.httpMethod",'
    '"path":"$context.path","status":"$context.status","latency":"$context.responseLatency",'
    '"integrationLatency":"$context.integrationLatency"}'
)
LATENCY_ALARM_FACTOR = 0.8
"""The p99 duration alarm fires at 80% of the function timeout."""
_ENUMS: dict[str, type[StrEnum]] = {"arch": Arch, "package_type": PackageType, "api": ApiKind, "auth": Auth}


@dataclass(frozen=True)
class AppModel:
    name: str
    description: str
    code_dir: str
    python: str
    arch: Arch
    memory_mb: int
    timeout_s: int = LAMBDA_TIMEOUT_S
    package_type: PackageType = PackageType.IMAGE
    api: ApiKind = ApiKind.REST
    auth: Auth = Auth.IAM
    settings: RuntimeSettings = field(default_factory=RuntimeSettings)
    """The function's environment. With a model_uri the weights live in S3 (adds /tmp space and read
    access to that object); with tracing, traces from inside the function (powertools Tracer)."""
    model_bytes: int = 0
    reserved_concurrency: int | None = None
    provisioned_concurrency: int | None = None
    throttle_rate: int = 50
    throttle_burst: int = 100
    snapstart: bool = False
    """Lambda SnapStart on the published versions (packager.snapstart decides and checks)."""

    def __post_init__(self) -> None:
        if self.snapstart and (reasons := snapstart_conflicts(self.python, self.provisioned_concurrency, self.tmp_mb)):
            raise SnapStartError(f"SnapStart cannot apply: {'; '.join(reasons)}")

    def to_dict(self) -> dict[str, Any]:
        """For bundle.json: enums as their values, the settings as the environment they render to."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: v.value if isinstance(v, StrEnum) else v for k, v in data.items()} | {
            "settings": self.settings.to_env()
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AppModel:
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        for name, kind in _ENUMS.items():
            values[name] = kind(values[name])
        values["settings"] = RuntimeSettings.from_env(data.get("settings") or {})
        return cls(**values)

    @property
    def prefix(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("-"))

    @property
    def logical_id(self) -> str:
        return self.prefix + "Function"

    @property
    def tmp_mb(self) -> int:
        """Ephemeral storage: Lambda's default 512 MB, more when the model is fetched from S3 into /tmp."""
        return _tmp_size_mb(self.model_bytes) if self.settings.model_uri is not None else 512


def render_template(app: AppModel) -> dict[str, Any]:
    resources: dict[str, Any] = {app.logical_id: _render_function(app)}
    resources |= _render_api(app)
    resources |= _render_logs(app)
    resources |= _render_alarms(app)
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": "AWS::Serverless-2016-10-31",
        "Description": app.description,
        "Resources": resources,
        "Outputs": _render_outputs(app),
    }


def _render_function(app: AppModel) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "PackageType": "Image" if app.package_type is PackageType.IMAGE else "Zip",
        "Architectures": [app.arch.value],
        "MemorySize": app.memory_mb,
        "Timeout": app.timeout_s,
        "Tracing": "Active",
        "AutoPublishAlias": ALIAS,
        "DeploymentPreference": {
            "Type": "Canary10Percent5Minutes",
            "Alarms": [{"Ref": f"{app.prefix}ErrorsAlarm"}, {"Ref": f"{app.prefix}LatencyAlarm"}],
        },
        "Environment": {"Variables": app.settings.to_env()},
        "Events": _render_events(app),
    } | _render_snapstart(app)
    if app.reserved_concurrency is not None:
        properties["ReservedConcurrentExecutions"] = app.reserved_concurrency
    if app.provisioned_concurrency:
        properties["ProvisionedConcurrencyConfig"] = {"ProvisionedConcurrentExecutions": app.provisioned_concurrency}
    if app.api is ApiKind.FUNCTION_URL:
        properties["FunctionUrlConfig"] = {"AuthType": "AWS_IAM" if app.auth is Auth.IAM else "NONE"}
    if app.settings.model_uri is not None:
        properties["EphemeralStorage"] = {"Size": app.tmp_mb}
        properties["Policies"] = [
            {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": app.settings.model_uri.arn}]}
        ]
    function: dict[str, Any] = {
        "Type": "AWS::Serverless::Function",
        "Metadata": {
            "checkov": {
                "skip": [
                    {"id": "CKV_AWS_116", "comment": "invoked synchronously by API Gateway: a DLQ never receives"},
                    {"id": "CKV_AWS_117", "comment": "calls no private resource; a VPC would only add cold start"},
                    {"id": "CKV_AWS_173", "comment": "environment holds settings only, no secrets"},
                ]
                + (
                    []
                    if app.reserved_concurrency is not None
                    else [{"id": "CKV_AWS_115", "comment": "pack --reserved-concurrency N sets a limit"}]
                )
            }
        },
        "Properties": properties,
    }
    if app.package_type is PackageType.IMAGE:
        function["Metadata"] |= {
            "DockerContext": app.code_dir,
            "Dockerfile": "Dockerfile",
            "DockerTag": f"python{app.python}-v1",
        }
    else:
        properties |= {
            "CodeUri": app.code_dir,
            "Handler": HANDLER,
            "Runtime": f"python{app.python}",
        }
        # The folder already holds the vendored, slimmed dependencies; SAM's Python builder would drop
        # their *.so files, so `sam build` runs the folder's Makefile, which copies it as it is.
        function["Metadata"]["BuildMethod"] = "makefile"
    return function


def _render_snapstart(app: AppModel) -> dict[str, Any]:
    """Snapshots of published versions only: AutoPublishAlias publishes one per deployment, and the alias
    (what API Gateway invokes) points at it; $LATEST keeps a normal init."""
    return {"SnapStart": {"ApplyOn": "PublishedVersions"}} if app.snapstart else {}


def _tmp_size_mb(model_bytes: int) -> int:
    """Room in /tmp for the model and one partial download of it."""
    return int(min(10_240, max(512, 2 * model_bytes // 1_000_000 + 256)))


def _event_key(route: Route) -> str:
    return "".join(part.capitalize() for part in (*route.endpoint.split("_"), *route.params))


def _render_events(app: AppModel) -> dict[str, Any]:
    """One API event per route of handlers.routes, and a catch-all so unknown paths get the handler's 404."""
    routes = {_event_key(r): (r.path, r.method.lower()) for r in ROUTES} | {"Everything": ("/{proxy+}", "any")}
    if app.api is ApiKind.REST:
        return {
            key: {
                "Type": "Api",
                "Properties": {"Path": path, "Method": method, "RestApiId": {"Ref": f"{app.prefix}Api"}},
            }
            for key, (path, method) in routes.items()
        }
    if app.api is ApiKind.HTTP:
        return {
            key: {
                "Type": "HttpApi",
                "Properties": {"Path": path, "Method": method.upper(), "ApiId": {"Ref": f"{app.prefix}HttpApi"}},
            }
            for key, (path, method) in routes.items()
        }
    return {}


def _render_api(app: AppModel) -> dict[str, Any]:
    if app.api is ApiKind.REST:
        auth: dict[str, Any] = {}
        if app.auth is Auth.IAM:
            auth = {"DefaultAuthorizer": "AWS_IAM"}
        elif app.auth is Auth.API_KEY:
            auth = {
                "ApiKeyRequired": True,
                "UsagePlan": {
                    "CreateUsagePlan": "PER_API",
                    "Throttle": {"RateLimit": app.throttle_rate, "BurstLimit": app.throttle_burst},
                },
            }
        api: dict[str, Any] = {
            "Type": "AWS::Serverless::Api",
            "Metadata": {
                "checkov": {
                    "skip": [
                        {
                            "id": "CKV_AWS_120",
                            "comment": "answers are per POST body; a cache keyed on the path would mix them",
                        }
                    ]
                }
            },
            "Properties": {
                "StageName": STAGE,
                "TracingEnabled": True,
                "AccessLogSetting": {
                    "DestinationArn": {"Fn::GetAtt": [f"{app.prefix}AccessLogs", "Arn"]},
                    "Format": ACCESS_LOG_FORMAT,
                },
                "MethodSettings": [
                    {
                        "ResourcePath": "/*",
                        "HttpMethod": "*",
                        "ThrottlingRateLimit": app.throttle_rate,
                        "ThrottlingBurstLimit": app.throttle_burst,
                        "MetricsEnabled": True,
                    }
                ],
            }
            | ({"Auth": auth} if auth else {}),
        }
        return {f"{app.prefix}Api": api, f"{app.prefix}AccessLogs": _log_group(None)}
    if app.api is ApiKind.HTTP:
        http: dict[str, Any] = {
            "Type": "AWS::Serverless::HttpApi",
            "Properties": {
                "DefaultRouteSettings": {
                    "ThrottlingRateLimit": app.throttle_rate,
                    "ThrottlingBurstLimit": app.throttle_burst,
                },
                "AccessLogSettings": {
                    "DestinationArn": {"Fn::GetAtt": [f"{app.prefix}AccessLogs", "Arn"]},
                    "Format": ACCESS_LOG_FORMAT,
                },
            },
        }
        if app.auth is Auth.IAM:
            http["Properties"]["Auth"] = {"EnableIamAuthorizer": True, "DefaultAuthorizer": "AWS_IAM"}
        return {f"{app.prefix}HttpApi": http, f"{app.prefix}AccessLogs": _log_group(None)}
    return {}


def _render_logs(app: AppModel) -> dict[str, Any]:
    return {f"{app.prefix}Logs": _log_group({"Fn::Sub": f"/aws/lambda/${{{app.logical_id}}}"})}


def _log_group(name: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "Type": "AWS::Logs::LogGroup",
        "Metadata": {
            "checkov": {
                "skip": [{"id": "CKV_AWS_158", "comment": "CloudWatch encrypts logs at rest; add a KMS key to own it"}]
            }
        },
        "Properties": ({"LogGroupName": name} if name else {}) | {"RetentionInDays": LOG_RETENTION_DAYS},
    }


def _render_alarms(app: AppModel) -> dict[str, Any]:
    dimensions = [
        {"Name": "FunctionName", "Value": {"Ref": app.logical_id}},
        {"Name": "Resource", "Value": {"Fn::Sub": f"${{{app.logical_id}}}:{ALIAS}"}},
    ]
    common = {"Namespace": "AWS/Lambda", "Dimensions": dimensions, "Period": 60, "EvaluationPeriods": 2}
    return {
        f"{app.prefix}ErrorsAlarm": {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": common
            | {
                "AlarmDescription": f"{app.name}: function errors (5xx) on the live alias; rolls a canary back",
                "MetricName": "Errors",
                "Statistic": "Sum",
                "Threshold": 1,
                "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                "TreatMissingData": "notBreaching",
            },
        },
        f"{app.prefix}LatencyAlarm": {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": common
            | {
                "AlarmDescription": f"{app.name}: p99 duration near the timeout; rolls a canary back",
                "MetricName": "Duration",
                "ExtendedStatistic": "p99",
                "Threshold": int(app.timeout_s * 1000 * LATENCY_ALARM_FACTOR),
                "ComparisonOperator": "GreaterThanThreshold",
                "TreatMissingData": "notBreaching",
            },
        },
    }


def _render_outputs(app: AppModel) -> dict[str, Any]:
    if app.api is ApiKind.REST:
        url = f"https://${{{app.prefix}Api}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}/{STAGE}/"
    elif app.api is ApiKind.HTTP:
        url = f"https://${{{app.prefix}HttpApi}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}/"
    else:
        url = f"${{{app.logical_id}Url.FunctionUrl}}"
    return {
        "Endpoint": {"Description": "Base URL of the endpoint: POST {Endpoint}predict", "Value": {"Fn::Sub": url}},
        "FunctionName": {"Description": "The inference function", "Value": {"Ref": app.logical_id}},
        "Auth": {"Description": "How callers authenticate", "Value": app.auth.value},
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
