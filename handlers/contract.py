"""The contract between the packager and the function: names, paths and settings both sides read.

Standard library only, so the CLI and the handler import it for free. Every environment variable,
bundle path and the handler's entry point live here and nowhere else; `RuntimeSettings` is the one
reader and writer of the function's environment (the template renders `to_env()`, the handler reads
`from_env()`, `lambdafit serve` passes the same object in-process).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

# The bundle: build/NAME/...
FUNCTION_DIR = "function"
"""CodeUri (zip) or DockerContext (image): handler code, model folder, docs assets."""
MODEL_DIR = "model"
STATIC_DIR = "static"
HANDLERS_DIR = "handlers"
EVENTS_DIR = "events"
SAMPLES_DIR = "requests"
"""A sample request of the kind the bundle takes: request.json (JSON) and sample.png or sample.txt (raw)."""
TEMPLATE_FILE = "template.yaml"
SAMCONFIG_FILE = "samconfig.toml"
BUNDLE_FILE = "bundle.json"
"""What `pack` wrote and `serve`, `invoke` and `deploy` read back: the bundle's typed description."""
DEPLOYMENT_FILE = "deployment.json"
"""What `lambdafit deploy` learned from the stack (endpoint, region, function), for `invoke`, `logs`, `delete`."""
MODEL_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"
GENAI_CONFIG_FILE = "genai_config.json"
"""A text-generation model folder's onnxruntime-genai configuration, beside its model.onnx."""
WARMUP_FILE = "warmup.json"
"""In the model folder: a sample /predict body, run before a SnapStart snapshot (handlers.snapstart)."""
HANDLER = "handlers.lambda_function.lambda_handler"
"""The function's entry point: the image's CMD, the zip's Handler."""
BATCH_HANDLER = "handlers.batch_function.lambda_handler"
"""The batch function's entry point (`pack --mode batch`): SQS, asynchronous and Distributed Map events."""
STREAM_RUNTIME = "handlers.bootstrap"
"""The bundle's own runtime loop, which answers in Lambda's streaming mode: a streaming image's ENTRYPOINT
(`python3 -m handlers.bootstrap`), and what a streaming zip's exec wrapper starts."""
STREAM_WRAPPER_FILE = "lambdafit-stream"
"""A streaming zip's exec wrapper script, at the function's root."""
TASK_ROOT = "/var/task"

# The function's environment.
ENV_MODEL_DIR = "LAMBDAFIT_MODEL_DIR"
ENV_MODEL_URI = "MODEL_URI"
ENV_TRACING = "LAMBDAFIT_TRACING"
ENV_CACHE_DIR = "LAMBDAFIT_CACHE_DIR"
ENV_RESULTS_URI = "LAMBDAFIT_RESULTS_URI"
"""s3://bucket/prefix where the batch function writes the lines of SQS and asynchronous rows."""
ENV_SERVICE = "POWERTOOLS_SERVICE_NAME"
ENV_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"
ENV_LOG_LEVEL = "POWERTOOLS_LOG_LEVEL"
ENV_METRICS_DISABLED = "POWERTOOLS_METRICS_DISABLED"
ENV_DEV = "POWERTOOLS_DEV"
ENV_EXEC_WRAPPER = "AWS_LAMBDA_EXEC_WRAPPER"
"""Read by Lambda itself: a script that starts the runtime (a streaming zip's starts handlers.bootstrap)."""
ENV_VARS = (
    ENV_MODEL_DIR, ENV_MODEL_URI, ENV_TRACING, ENV_CACHE_DIR, ENV_SERVICE, ENV_NAMESPACE, ENV_LOG_LEVEL,
    ENV_METRICS_DISABLED, ENV_RESULTS_URI,
)  # fmt: skip

DEFAULT_NAMESPACE = "lambdafit"

# The metrics the function writes (EMF) that the template's alarms watch.
METRIC_SERVER_ERRORS = "ServerErrors"
DIMENSION_SERVICE = "service"
DIMENSION_VERSION = "FunctionVersion"
DEFAULT_CACHE_DIR = "/tmp/lambdafit"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


class ContractError(ValueError):
    """A setting or URI that does not follow the contract; the message says which and how to fix it."""


class ApiKind(StrEnum):
    """Which front door invokes the function. The handler tells the event shapes apart by themselves;
    the template, the emulator and the sample events follow this choice."""

    REST = "rest"
    HTTP = "http"
    FUNCTION_URL = "url"


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str

    @classmethod
    def parse(cls, text: str, *, prefix_only: bool = False) -> S3Uri:
        """`s3://bucket/key`; with `prefix_only` the key may be empty (`s3://bucket` or `s3://bucket/prefix`)."""
        match = re.fullmatch(r"s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(.*))?", text.strip())
        key = (match.group(2) or "").strip("/") if match else ""
        if match is None or (not key and not prefix_only):
            shape = "s3://bucket/prefix" if prefix_only else "s3://bucket/key"
            raise ContractError(f"{text!r} is not an S3 URI of the form {shape}")
        return cls(match.group(1), key)

    def join(self, *parts: str) -> S3Uri:
        return S3Uri(self.bucket, "/".join(p.strip("/") for p in (self.key, *parts) if p.strip("/")))

    @property
    def arn(self) -> str:
        return f"arn:aws:s3:::{self.bucket}/{self.key}"

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def flag(value: str | None, name: str) -> bool:
    text = (value or "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ContractError(f"{name}={value!r} is not a boolean: use true or false")


def metrics_enabled(environ: Mapping[str, str]) -> bool:
    """Powertools' rule: POWERTOOLS_METRICS_DISABLED=true, or POWERTOOLS_DEV=true unless metrics are
    explicitly enabled, turns EMF output off."""
    disabled = environ.get(ENV_METRICS_DISABLED)
    if disabled is not None and disabled.strip():
        return not flag(disabled, ENV_METRICS_DISABLED)
    return not flag(environ.get(ENV_DEV), ENV_DEV)


def _process_metrics() -> bool:
    import os

    return metrics_enabled(os.environ)


def stream_wrapper_path() -> str:
    return f"{TASK_ROOT}/{STREAM_WRAPPER_FILE}"


def default_model_dir() -> Path:
    """The `model` folder beside the `handlers` package, as both the image and the zip lay it out."""
    return Path(__file__).resolve().parent.parent / MODEL_DIR


@dataclass(frozen=True)
class RuntimeSettings:
    """Everything the function reads from its environment, typed."""

    model_dir: Path = field(default_factory=default_model_dir)
    model_uri: S3Uri | None = None
    """Fetch the weights from S3 at init instead of reading them from `model_dir`."""
    tracing: bool = False
    """X-Ray traces through powertools' Tracer (the bundle vendors aws-xray-sdk)."""
    cache_dir: Path = Path(DEFAULT_CACHE_DIR)
    service: str = "lambdafit"
    namespace: str = DEFAULT_NAMESPACE
    log_level: str = "INFO"
    metrics: bool = field(default_factory=_process_metrics)
    """EMF metrics on stdout (CloudWatch turns them into metrics); off with POWERTOOLS_METRICS_DISABLED."""
    stream_runtime: bool = False
    """Lambda starts the bundle's own runtime loop (STREAM_RUNTIME) through the exec wrapper instead of the
    managed runtime's: a zip that streams its responses (a streaming image sets its ENTRYPOINT instead)."""
    results_uri: S3Uri | None = None
    """Where the batch function writes its SQS and asynchronous lines (the stack's batch bucket)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> RuntimeSettings:
        uri = environ.get(ENV_MODEL_URI)
        return cls(
            model_dir=Path(environ[ENV_MODEL_DIR]) if environ.get(ENV_MODEL_DIR) else default_model_dir(),
            model_uri=S3Uri.parse(uri) if uri else None,
            tracing=flag(environ.get(ENV_TRACING), ENV_TRACING),
            cache_dir=Path(environ.get(ENV_CACHE_DIR) or DEFAULT_CACHE_DIR),
            service=environ.get(ENV_SERVICE) or "lambdafit",
            namespace=environ.get(ENV_NAMESPACE) or DEFAULT_NAMESPACE,
            log_level=environ.get(ENV_LOG_LEVEL) or "INFO",
            metrics=metrics_enabled(environ),
            stream_runtime=environ.get(ENV_EXEC_WRAPPER) == stream_wrapper_path(),
            results_uri=S3Uri.parse(results, prefix_only=True) if (results := environ.get(ENV_RESULTS_URI)) else None,
        )

    def to_env(self) -> dict[str, str]:
        """The function's environment variables (what the template sets); the model folder is implied."""
        env = {
            ENV_SERVICE: self.service,
            ENV_NAMESPACE: self.namespace,
            ENV_LOG_LEVEL: self.log_level,
        }
        if self.model_uri is not None:
            env[ENV_MODEL_URI] = str(self.model_uri)
        if self.tracing:
            env[ENV_TRACING] = "true"
        if not self.metrics:
            env[ENV_METRICS_DISABLED] = "true"
        if self.stream_runtime:
            env[ENV_EXEC_WRAPPER] = stream_wrapper_path()
        if self.results_uri is not None:
            env[ENV_RESULTS_URI] = str(self.results_uri)
        return env

    def with_model_dir(self, model_dir: Path) -> RuntimeSettings:
        return replace(self, model_dir=model_dir)
