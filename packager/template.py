"""The SAM application: one resource model (`AppModel`), rendered to template.yaml and samconfig.toml.

One `_render_<part>` function per part of the stack, in the manner of Chalice's SAM generator: the
function, its API front (REST API, HTTP API or function URL), its access control, its log group, the
alarms that roll a canary deployment back, and the outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from handlers.contract import (
    BATCH_HANDLER,
    DIMENSION_SERVICE,
    DIMENSION_VERSION,
    ENV_RESULTS_URI,
    HANDLER,
    METRIC_SERVER_ERRORS,
    ApiKind,
    RuntimeSettings,
)
from handlers.manifest import Task
from handlers.routes import Route, routes_for
from packager.config import Arch, Auth, PackageType, check_auth
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
BINARY_MEDIA_TYPES = ("image~1png", "image~1jpeg")
"""Request bodies a REST API hands the function base64-encoded and intact (SAM writes `/` as `~1`): what
/predict takes as raw images. HTTP APIs and function URLs encode binary bodies by themselves."""
LATENCY_ALARM_FACTOR = 0.8
"""The p99 duration alarm fires at 80% of the function timeout."""
_ENUMS: dict[str, type[StrEnum]] = {
    "arch": Arch, "package_type": PackageType, "api": ApiKind, "auth": Auth, "task": Task,
}  # fmt: skip
STREAMING_APIS = (ApiKind.REST, ApiKind.FUNCTION_URL)
"""Front doors that can stream a response (HTTP APIs cannot)."""


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
    task: Task = Task.GENERIC
    """Which route table the API events carry (handlers.routes.routes_for); text generation streams."""
    snapstart: bool = False
    """Lambda SnapStart on the published versions (packager.snapstart decides and checks)."""
    batch: bool = False
    """`pack --mode batch`: a batch function fed by SQS, asynchronous invocations and a Distributed Map."""
    batch_rows: int = 64
    """Rows per Distributed Map batch (packager.batch.map_batch_rows)."""

    def __post_init__(self) -> None:
        check_auth(self.api, self.auth)
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
            if name in values:  # a field a bundle predates keeps its default (task: generic)
                values[name] = kind(values[name])
        values["settings"] = RuntimeSettings.from_env(data.get("settings") or {})
        return cls(**values)

    @property
    def streaming(self) -> bool:
        """Responses stream (a text-generation bundle behind a REST API or a function URL)."""
        return self.task is Task.TEXT_GENERATION and self.api in STREAMING_APIS

    @property
    def prefix(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("-"))

    @property
    def logical_id(self) -> str:
        return self.prefix + "Function"

    @property
    def batch_logical_id(self) -> str:
        return self.prefix + "BatchFunction"

    @property
    def function_ids(self) -> tuple[str, ...]:
        """Every function of the stack, all built from the same code folder."""
        return (self.logical_id, self.batch_logical_id) if self.batch else (self.logical_id,)

    @property
    def tmp_mb(self) -> int:
        """Ephemeral storage: Lambda's default 512 MB, more when the model is fetched from S3 into /tmp."""
        return _tmp_size_mb(self.model_bytes) if self.settings.model_uri is not None else 512


def render_template(app: AppModel) -> dict[str, Any]:
    resources: dict[str, Any] = {app.logical_id: _render_function(app)}
    resources |= _render_api(app)
    resources |= _render_logs(app)
    resources |= _render_alarms(app)
    resources |= _render_batch(app)
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": "AWS::Serverless-2016-10-31",
        "Description": app.description,
        "Resources": resources,
        "Outputs": _render_outputs(app) | _render_batch_outputs(app),
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
            "Alarms": [{"Ref": app.prefix + alarm} for alarm in ROLLBACK_ALARMS],
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
        if app.streaming:
            properties["FunctionUrlConfig"]["InvokeMode"] = "RESPONSE_STREAM"
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
    """One API event per route of handlers.routes, and a catch-all so unknown paths get the handler's 404.
    A streaming REST API streams every integration, for up to the function's timeout (15 minutes at most)."""
    table = routes_for(app.task)
    routes = {_event_key(r): (r.path, r.method.lower()) for r in table} | {"Everything": ("/{proxy+}", "any")}
    if app.api is ApiKind.REST:
        stream = (
            {"ResponseTransferMode": "RESPONSE_STREAM", "TimeoutInMillis": app.timeout_s * 1000}
            if app.streaming
            else {}
        )
        return {
            key: {
                "Type": "Api",
                "Properties": {"Path": path, "Method": method, "RestApiId": {"Ref": f"{app.prefix}Api"}} | stream,
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
            # InvokeRole NONE: API Gateway calls the function under its resource policy, not with each
            # caller's credentials (which would make every caller need lambda:InvokeFunction too).
            auth = {"DefaultAuthorizer": "AWS_IAM", "InvokeRole": "NONE"}
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
                "BinaryMediaTypes": list(BINARY_MEDIA_TYPES),
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


def _new_version(app: AppModel) -> dict[str, Any]:
    """The version AutoPublishAlias publishes in this deployment (SAM's `<Function>.Version` resource):
    the alarms watch it alone, so the canary is judged by its own requests, not the old version's."""
    return {"Fn::GetAtt": [f"{app.logical_id}.Version", "Version"]}


def _render_alarms(app: AppModel) -> dict[str, Any]:
    """Three alarms roll a canary back: the handler's own 5xx answers (a 503 is a successful invocation
    to Lambda, so AWS/Lambda Errors never counts it), crashes and timeouts, and p99 duration."""
    lambda_dimensions = [
        {"Name": "FunctionName", "Value": {"Ref": app.logical_id}},
        {"Name": "Resource", "Value": {"Fn::Sub": f"${{{app.logical_id}}}:{ALIAS}"}},
        {"Name": "ExecutedVersion", "Value": _new_version(app)},
    ]
    common = {"Period": 60, "TreatMissingData": "notBreaching"}
    lambda_common = common | {"Namespace": "AWS/Lambda", "Dimensions": lambda_dimensions}
    return {
        f"{app.prefix}ServerErrorsAlarm": {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": common
            | {
                "AlarmDescription": f"{app.name}: the new version answered 5xx (its own EMF metric); rolls a canary back",
                "Namespace": app.settings.namespace,
                "MetricName": METRIC_SERVER_ERRORS,
                "Dimensions": [
                    {"Name": DIMENSION_SERVICE, "Value": app.settings.service},
                    {"Name": DIMENSION_VERSION, "Value": _new_version(app)},
                ],
                "Statistic": "Sum",
                "EvaluationPeriods": 1,
                "Threshold": 1,
                "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            },
        },
        f"{app.prefix}ErrorsAlarm": {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": lambda_common
            | {
                "AlarmDescription": f"{app.name}: the new version crashed or timed out; rolls a canary back",
                "MetricName": "Errors",
                "Statistic": "Sum",
                "EvaluationPeriods": 1,
                "Threshold": 1,
                "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            },
        },
        f"{app.prefix}LatencyAlarm": {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": lambda_common
            | {
                "AlarmDescription": f"{app.name}: the new version's p99 duration is near the timeout; rolls a canary back",
                "MetricName": "Duration",
                "ExtendedStatistic": "p99",
                "EvaluationPeriods": 2,
                "Threshold": int(app.timeout_s * 1000 * LATENCY_ALARM_FACTOR),
                "ComparisonOperator": "GreaterThanThreshold",
            },
        },
    }


ROLLBACK_ALARMS = ("ServerErrorsAlarm", "ErrorsAlarm", "LatencyAlarm")


def _render_outputs(app: AppModel) -> dict[str, Any]:
    if app.api is ApiKind.REST:
        url = f"https://${{{app.prefix}Api}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}/{STAGE}/"
    elif app.api is ApiKind.HTTP:
        url = f"https://${{{app.prefix}HttpApi}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}/"
    else:
        url = f"${{{app.logical_id}Url.FunctionUrl}}"
    route = (
        "v1/chat/completions (OpenAI clients: base_url {Endpoint}v1)" if app.task is Task.TEXT_GENERATION else "predict"
    )
    return {
        "Endpoint": {"Description": f"Base URL of the endpoint: POST {{Endpoint}}{route}", "Value": {"Fn::Sub": url}},
        "FunctionName": {"Description": "The inference function", "Value": {"Ref": app.logical_id}},
        "Auth": {"Description": "What the endpoint enforces on every route", "Value": _enforced(app)},
    } | (
        {"ApiKeyId": {"Description": "The API key's id: aws apigateway get-api-key --include-value --api-key <id>",
                      "Value": {"Ref": f"{app.prefix}ApiApiKey"}}}
        if app.auth is Auth.API_KEY
        else {}
    )  # fmt: skip


def _enforced(app: AppModel) -> str:
    if app.auth is Auth.NONE:
        return "none: anyone who has the URL may call every route"
    if app.auth is Auth.API_KEY:
        return (
            "api-key: every route needs the x-api-key header of the key in output ApiKeyId "
            f"(usage plan {app.throttle_rate} requests/s, burst {app.throttle_burst})"
        )
    action = "lambda:InvokeFunctionUrl" if app.api is ApiKind.FUNCTION_URL else "execute-api:Invoke"
    return f"iam: every route needs a SigV4-signed request from a principal allowed {action}"


BATCH_TIMEOUT_S = 300
BATCH_CONCURRENCY = 100
"""The batch function's reserved concurrency when pack --reserved-concurrency does not set one; the
Distributed Map's MaxConcurrency and the SQS event source's MaximumConcurrency follow it."""
SQS_BATCH_SIZE = 10
MAX_RECEIVES = 3
"""Deliveries of a message before SQS moves it to the dead-letter queue."""
RESULTS_PREFIX = "results"
LOG_DELIVERY_ACTIONS = (
    "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
)  # fmt: skip
"""What a state machine's role needs to deliver its logs to CloudWatch (vended logs)."""
SSE_SQS_SKIP = {
    "id": "CKV_AWS_27",
    "comment": "SSE-SQS (SqsManagedSseEnabled) encrypts it; the check reads only KmsMasterKeyId",
}


def batch_concurrency(app: AppModel) -> int:
    return app.reserved_concurrency or BATCH_CONCURRENCY


def _queue(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "Type": "AWS::SQS::Queue",
        "Metadata": {"checkov": {"skip": [SSE_SQS_SKIP]}},
        "Properties": {"SqsManagedSseEnabled": True, "MessageRetentionPeriod": 1_209_600} | properties,
    }


def _render_batch(app: AppModel) -> dict[str, Any]:
    """The batch half of `--mode batch`: a second function on the same code (handlers.batch_function),
    fed by an SQS queue (partial batch failures, dead-letter queue), by asynchronous invocations (an
    on-failure destination) and by a Step Functions Distributed Map over JSONL or CSV in S3."""
    if not app.batch:
        return {}
    p = app.prefix
    fn = app.batch_logical_id
    bucket, queue, dlq, failures = f"{p}BatchBucket", f"{p}BatchQueue", f"{p}BatchDLQ", f"{p}AsyncFailures"
    concurrency = batch_concurrency(app)
    properties: dict[str, Any] = {
        "PackageType": "Image" if app.package_type is PackageType.IMAGE else "Zip",
        "Architectures": [app.arch.value],
        "MemorySize": app.memory_mb,
        "Timeout": BATCH_TIMEOUT_S,
        "Tracing": "Active",
        "AutoPublishAlias": ALIAS,
        "ReservedConcurrentExecutions": concurrency,
        "Environment": {
            "Variables": app.settings.to_env() | {ENV_RESULTS_URI: {"Fn::Sub": f"s3://${{{bucket}}}/{RESULTS_PREFIX}"}}
        },
        "Policies": [
            {
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "s3:PutObject",
                        "Resource": {"Fn::Sub": f"${{{bucket}.Arn}}/{RESULTS_PREFIX}/*"},
                    }
                ]
                + (
                    [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": app.settings.model_uri.arn}]
                    if app.settings.model_uri is not None
                    else []
                )
            }
        ],
        "Events": {
            "Queue": {
                "Type": "SQS",
                "Properties": {
                    "Queue": {"Fn::GetAtt": [queue, "Arn"]},
                    "BatchSize": SQS_BATCH_SIZE,
                    "MaximumBatchingWindowInSeconds": 5,
                    "FunctionResponseTypes": ["ReportBatchItemFailures"],
                    "ScalingConfig": {"MaximumConcurrency": min(1000, max(2, concurrency))},
                },
            }
        },
        "EventInvokeConfig": {
            "MaximumRetryAttempts": 1,
            "MaximumEventAgeInSeconds": 3600,
            "DestinationConfig": {"OnFailure": {"Type": "SQS", "Destination": {"Fn::GetAtt": [failures, "Arn"]}}},
        },
    } | _render_snapstart(app)
    if app.settings.model_uri is not None:
        properties["EphemeralStorage"] = {"Size": app.tmp_mb}
    function: dict[str, Any] = {
        "Type": "AWS::Serverless::Function",
        "Metadata": {
            "checkov": {
                "skip": [
                    {
                        "id": "CKV_AWS_116",
                        "comment": "asynchronous failures go to an on-failure destination, SQS ones to a DLQ",
                    },
                    {"id": "CKV_AWS_117", "comment": "calls no private resource; a VPC would only add cold start"},
                    {"id": "CKV_AWS_173", "comment": "environment holds settings only, no secrets"},
                ]
            }
        },
        "Properties": properties,
    }
    if app.package_type is PackageType.IMAGE:
        properties["ImageConfig"] = {"Command": [BATCH_HANDLER]}
        function["Metadata"] |= {
            "DockerContext": app.code_dir,
            "Dockerfile": "Dockerfile",
            "DockerTag": f"python{app.python}-v1",
        }
    else:
        properties |= {"CodeUri": app.code_dir, "Handler": BATCH_HANDLER, "Runtime": f"python{app.python}"}
        function["Metadata"]["BuildMethod"] = "makefile"
    return {
        fn: function,
        f"{p}BatchLogs": _log_group({"Fn::Sub": f"/aws/lambda/${{{fn}}}"}),
        bucket: {
            "Type": "AWS::S3::Bucket",
            "Metadata": {
                "checkov": {
                    "skip": [
                        {
                            "id": "CKV_AWS_18",
                            "comment": "holds batch inputs and results; add access logging to a bucket you own",
                        }
                    ]
                }
            },
            "Properties": {
                "VersioningConfiguration": {"Status": "Enabled"},
                "BucketEncryption": {
                    "ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
                },
                "PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": True,
                    "BlockPublicPolicy": True,
                    "IgnorePublicAcls": True,
                    "RestrictPublicBuckets": True,
                },
            },
        },
        dlq: _queue({}),
        queue: _queue(
            {
                "VisibilityTimeout": 6 * BATCH_TIMEOUT_S,
                "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": [dlq, "Arn"]}, "maxReceiveCount": MAX_RECEIVES},
            }
        ),
        failures: _queue({}),
        f"{p}BatchStateMachine": _render_state_machine(app, fn, bucket, concurrency),
        f"{p}StateMachineLogs": _log_group({"Fn::Sub": f"/aws/vendedlogs/states/${{AWS::StackName}}-{p}-batch"}),
    }


def state_machine_name(app: AppModel) -> dict[str, Any]:
    """Fixed, so the role can name its own executions (the Map's child workflows) without a cycle."""
    return {"Fn::Sub": f"${{AWS::StackName}}-{app.name}-batch"}


def map_state(app: AppModel, reader: dict[str, Any], fmt: str, concurrency: int) -> dict[str, Any]:
    """One Distributed Map: rows read from S3 with their index, batched, scored by the batch function's
    alias, lines written back to S3 one per row."""
    return {
        "Type": "Map",
        "MaxConcurrency": concurrency,
        "ToleratedFailurePercentage": 5,
        "ItemReader": {
            "Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": reader,
            "Arguments": {"Bucket": "${Bucket}", "Key": "{% $states.input.key %}"},
        },
        "ItemSelector": {
            "index": "{% $states.context.Map.Item.Index %}",
            "row": "{% $states.context.Map.Item.Value %}",
        },
        "ItemBatcher": {
            "MaxItemsPerBatch": app.batch_rows,
            "MaxInputBytesPerBatch": 245_760,
            "BatchInput": {"format": fmt},
        },
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
            "StartAt": "Score",
            "States": {
                "Score": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Arguments": {"FunctionName": "${Function}", "Payload": "{% $states.input %}"},
                    "Output": "{% $states.result.Payload %}",
                    "Retry": [
                        {
                            "ErrorEquals": [
                                "Lambda.TooManyRequestsException",
                                "Lambda.ServiceException",
                                "States.Timeout",
                            ],
                            "IntervalSeconds": 2,
                            "MaxAttempts": 4,
                            "BackoffRate": 2,
                            "JitterStrategy": "FULL",
                        }
                    ],
                    "End": True,
                }
            },
        },
        "ResultWriter": {
            "Resource": "arn:aws:states:::s3:putObject",
            "Arguments": {"Bucket": "${Bucket}", "Prefix": f"{RESULTS_PREFIX}/map"},
            "WriterConfig": {"OutputType": "JSONL", "Transformation": "FLATTEN"},
        },
        "End": True,
    }


def state_machine_definition(app: AppModel, concurrency: int) -> dict[str, Any]:
    """Start it with {"key": "inputs/rows.jsonl"} (or a .csv key) of an object in the batch bucket."""
    return {
        "Comment": f"lambdafit batch inference for {app.name}",
        "QueryLanguage": "JSONata",
        "StartAt": "Format",
        "States": {
            "Format": {
                "Type": "Choice",
                "Choices": [
                    {"Condition": '{% $lowercase($substring($states.input.key, -4)) = ".csv" %}', "Next": "ScoreCsv"}
                ],
                "Default": "ScoreJsonl",
            },
            "ScoreJsonl": map_state(app, {"InputType": "JSONL"}, "jsonl", concurrency),
            "ScoreCsv": map_state(app, {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"}, "csv", concurrency),
        },
    }


def _render_state_machine(app: AppModel, fn: str, bucket: str, concurrency: int) -> dict[str, Any]:
    name = state_machine_name(app)["Fn::Sub"]
    return {
        "Type": "AWS::Serverless::StateMachine",
        "Properties": {
            "Name": state_machine_name(app),
            "Type": "STANDARD",
            "Tracing": {"Enabled": True},
            "Logging": {
                "Level": "ERROR",
                "IncludeExecutionData": False,
                "Destinations": [
                    {
                        "CloudWatchLogsLogGroup": {
                            "LogGroupArn": {"Fn::GetAtt": [f"{app.prefix}StateMachineLogs", "Arn"]}
                        }
                    }
                ],
            },
            "DefinitionSubstitutions": {"Function": {"Ref": f"{fn}.Alias"}, "Bucket": {"Ref": bucket}},
            "Definition": state_machine_definition(app, concurrency),
            "Policies": [
                {"S3ReadPolicy": {"BucketName": {"Ref": bucket}}},
                {"LambdaInvokePolicy": {"FunctionName": {"Ref": fn}}},
                {
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": ["s3:PutObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"],
                            "Resource": {"Fn::Sub": f"${{{bucket}.Arn}}/{RESULTS_PREFIX}/*"},
                        },
                        {
                            "Effect": "Allow",
                            "Action": ["states:StartExecution"],
                            "Resource": {
                                "Fn::Sub": f"arn:${{AWS::Partition}}:states:${{AWS::Region}}:${{AWS::AccountId}}:stateMachine:{name}"
                            },
                        },
                        {
                            "Effect": "Allow",
                            "Action": ["states:DescribeExecution", "states:StopExecution"],
                            "Resource": {
                                "Fn::Sub": f"arn:${{AWS::Partition}}:states:${{AWS::Region}}:${{AWS::AccountId}}:execution:{name}/*"
                            },
                        },
                        {
                            "Effect": "Allow",
                            "Action": list(LOG_DELIVERY_ACTIONS),
                            "Resource": "*",
                        },
                    ]
                },
            ],
        },
    }


def _render_batch_outputs(app: AppModel) -> dict[str, Any]:
    if not app.batch:
        return {}
    p = app.prefix
    return {
        "BatchBucket": {
            "Description": "Put inputs/*.jsonl or *.csv here; results/ receives the lines",
            "Value": {"Ref": f"{p}BatchBucket"},
        },
        "BatchStateMachine": {
            "Description": 'Start with {"key": "inputs/rows.jsonl"}',
            "Value": {"Ref": f"{p}BatchStateMachine"},
        },
        "BatchQueueUrl": {"Description": "Send one row per message", "Value": {"Ref": f"{p}BatchQueue"}},
        "BatchDeadLetterQueueUrl": {"Description": "Rows the model could not answer", "Value": {"Ref": f"{p}BatchDLQ"}},
        "AsyncFailureQueueUrl": {
            "Description": "Failed asynchronous invocations",
            "Value": {"Ref": f"{p}AsyncFailures"},
        },
        "BatchFunctionAlias": {
            "Description": "Invoke this alias asynchronously with one row (its on-failure destination is set on it)",
            "Value": {"Ref": f"{p}BatchFunction.Alias"},
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
