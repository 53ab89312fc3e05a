"""Typed settings for `pack`, resolved and validated in one place: argument > environment > default.

`PackConfig` checks its own rules when it is built, so a Python caller gets exactly what the CLI
gets: a zip budget implies a zip package, comma lists become tuples, `python` defaults from
LAMBDAFIT_PYTHON, unknown recipe steps and bad names are refused with the fix.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from handlers.contract import ApiKind, ContractError, S3Uri
from packager.errors import LambdafitError

MB = 1_000_000
ENV_PYTHON = "LAMBDAFIT_PYTHON"


class Arch(StrEnum):
    X86_64 = "x86_64"
    ARM64 = "arm64"


class PackageType(StrEnum):
    IMAGE = "image"
    ZIP = "zip"


class Objective(StrEnum):
    LATENCY = "latency"
    SIZE = "size"
    QUALITY = "quality"


class Mode(StrEnum):
    """What the stack serves: the HTTP API alone, or also batches (SQS, asynchronous, Distributed Map)."""

    API = "api"
    BATCH = "batch"


class MemoryObjective(StrEnum):
    """What MemorySize minimizes over the measured sweep, as AWS Lambda Power Tuning's strategies do."""

    COST = "cost"
    LATENCY = "latency"
    BALANCED = "balanced"


class Auth(StrEnum):
    """Who may call the endpoint. Closed by default: AWS IAM (SigV4-signed requests)."""

    IAM = "iam"
    API_KEY = "api-key"
    NONE = "none"


AUTH_BY_API: dict[ApiKind, tuple[Auth, ...]] = {
    ApiKind.REST: (Auth.IAM, Auth.API_KEY, Auth.NONE),
    ApiKind.HTTP: (Auth.IAM, Auth.NONE),
    ApiKind.FUNCTION_URL: (Auth.IAM, Auth.NONE),
}
"""What each front door enforces natively: HTTP APIs have no API keys or usage plans (only IAM, JWT and
Lambda authorizers); a function URL's AuthType is AWS_IAM or NONE."""


def check_auth(api: ApiKind, auth: Auth) -> None:
    """Refuse a front door that cannot enforce the auth asked for, naming the combinations that exist."""
    if auth in AUTH_BY_API[api]:
        return
    exists = "; ".join(
        f"--api {a.value} with --auth {'|'.join(x.value for x in allowed)}" for a, allowed in AUTH_BY_API.items()
    )
    raise LambdafitError(
        f"--api {api.value} cannot enforce --auth {auth.value} (only REST APIs have API keys and usage plans); "
        f"the combinations that exist: {exists}. Use --api rest --auth {auth.value}, or another --auth"
    )


class CalibrationMethod(StrEnum):
    MINMAX = "minmax"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"


NAMED_BUDGETS: dict[str, int] = {
    "zip": 262_144_000,
    "zip-upload": 52_428_800,
    "image": 10_737_418_240,
}
"""AWS Lambda's limits: 250 MB unzipped (code and layers), 50 MB zipped direct upload, 10 GB image."""
ZIP_BUDGETS = ("zip", "zip-upload")

PYTHON_VERSIONS = ("3.11", "3.12", "3.13")
DEFAULT_PYTHON = "3.13"
"""python3.12 and later run on Amazon Linux 2023 (glibc 2.34); python3.11 on Amazon Linux 2 (glibc 2.26),
too old for the onnxruntime and numpy wheels the handler pins. 3.13 is also what Lambda Managed Instances
and durable functions require."""


@dataclass(frozen=True)
class Budget:
    name: str
    limit_bytes: int

    @classmethod
    def parse(cls, text: str) -> Budget:
        key = text.strip().lower()
        if key in NAMED_BUDGETS:
            return cls(key, NAMED_BUDGETS[key])
        match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|kib|mib|gib)?", key)
        if not match:
            raise LambdafitError(
                f"cannot read budget {text!r}: use zip, zip-upload, image or a size such as 80MB or 1.5GB"
            )
        units = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}
        size = int(float(match.group(1)) * units[match.group(2) or "b"])
        if size <= 0:
            raise LambdafitError(f"budget {text!r} must be larger than zero")
        return cls(text.strip(), size)

    @property
    def zipped(self) -> bool:
        """The zip-upload budget counts zipped bytes; every other budget installed bytes."""
        return self.name == "zip-upload"

    @property
    def implied_package(self) -> PackageType | None:
        return PackageType.ZIP if self.name in ZIP_BUDGETS else None


def resolve(argument: str | None, env_var: str, default: str) -> str:
    """An explicit argument beats the environment, which beats the default."""
    if argument is not None:
        return argument
    return os.environ.get(env_var) or default


def _python_default() -> str:
    return resolve(None, ENV_PYTHON, DEFAULT_PYTHON)


def _split(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return tuple(str(part).strip() for part in value)


def _enum(kind: type[StrEnum], value: Any, option: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise LambdafitError(f"--{option} {value!r} is not one of {choices}") from None


@dataclass(frozen=True)
class PackConfig:
    model: str
    name: str
    output_dir: Path = Path("build")
    eval_data: Path | None = None
    calibration_data: Path | None = None
    train_data: Path | None = None
    student: str | None = None
    max_drop: float = 0.01
    budget: Budget | None = None
    """None: the package type's own limit."""
    package_type: PackageType | None = None
    """None: zip for a zip budget, else image."""
    arch: Arch = Arch.X86_64
    python: str = field(default_factory=_python_default)
    objective: Objective = Objective.LATENCY
    recipes: tuple[str, ...] = ("auto",)
    labels: tuple[str, ...] = ()
    calibration_method: CalibrationMethod = CalibrationMethod.MINMAX
    allow_slower: bool = False
    api: ApiKind = ApiKind.REST
    auth: Auth = Auth.IAM
    model_store: str | None = None
    reserved_concurrency: int | None = None
    provisioned_concurrency: int | None = None
    tracing: bool = False
    """X-Ray traces through powertools' Tracer (vendors aws-xray-sdk)."""
    preprocess: Path | None = None
    """JSON describing image or text requests (handlers.manifest preprocessing); tensors only when absent."""
    batch_axes: tuple[str, ...] = ()
    """`NAME=AXIS` or `NAME=none` for inputs whose batch axis the graph's names do not tell."""
    dims: tuple[str, ...] = ()
    """`NAME=MIN:MAX` bounds on symbolic non-batch dimensions (sequence length, image size)."""
    classifier_output: str | None = None
    """The output holding class scores, when its name does not say so."""
    outputs: tuple[str, ...] = ("auto",)
    """Which outputs /predict returns: `auto` (all but those over packager.postprocess.AUTO_MAX_VALUES
    numbers per row), `all`, `none` (a classifier's predictions only), or output names."""
    top_k: int = 5
    """Classes ranked per row in a classifier's predictions."""
    wheel_dir: Path | None = None
    force: bool = False
    trust_pickle: bool = False
    """Load a .joblib/.pkl MODEL with pickle at pack time (it runs the file's code); the bundle ships ONNX only."""
    task: str | None = None
    """The task to load a Hugging Face checkpoint folder for (packager.convert_hf.HfTask); inferred when None."""
    metric: str | None = None
    """`file.py:function` scoring a candidate's outputs against fp32's (packager.quality.UserMetric)."""
    mode: Mode = Mode.API
    """`batch` adds a batch function fed by SQS, asynchronous invocations and a Step Functions Distributed Map."""
    memory_objective: MemoryObjective = MemoryObjective.COST
    """How MemorySize is chosen from the chosen model's latency measured under Lambda's CPU share per size."""
    snapstart: bool | None = None
    """Lambda SnapStart: True or False as asked, None to turn it on where it pays (packager.snapstart)."""

    def __post_init__(self) -> None:
        self._coerce()
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,62}", self.name):
            raise LambdafitError(
                f"name {self.name!r} must start with a letter and hold only letters, digits and '-' "
                "(it names the CloudFormation stack and the function)"
            )
        if not 0 <= self.max_drop < 1:
            raise LambdafitError(f"--max-drop {self.max_drop} must be a fraction in [0, 1), e.g. 0.01 for 1 point")
        if self.python not in PYTHON_VERSIONS:
            raise LambdafitError(f"python {self.python!r} is not a Lambda runtime here; use one of {PYTHON_VERSIONS}")
        implied = self.budget.implied_package if self.budget else None
        if implied is not None and self.package_type not in (None, implied):
            raise LambdafitError(
                f"--budget {self.budget.name if self.budget else ''} is a zip limit but --package is "
                f"{self.package_type.value if self.package_type else ''}: drop one of them"
            )
        if not self.recipes:
            raise LambdafitError("--recipes is empty: give auto or a comma list such as slim,slim+int8-static")
        from packager.generate.checkpoint import is_generation
        from packager.recipes.registry import check_recipe

        if is_generation(self):
            from packager.generate.recipes import check_recipes

            check_recipes(self.recipes)
        else:
            for recipe in self.recipes:
                if recipe != "auto":
                    check_recipe(recipe)
        if self.student is not None:
            split_factory(self.student, "--student")
        if self.metric is not None:
            split_factory(self.metric, "--metric")
        if self.model_store is not None:
            try:
                S3Uri.parse(self.model_store, prefix_only=True)
            except ContractError as exc:
                raise LambdafitError(f"--model-store: {exc}") from None
        check_auth(self.api, self.auth)
        if self.top_k < 1:
            raise LambdafitError(f"--top-k {self.top_k} must be 1 or more")
        words = {"auto", "all", "none"} & set(self.outputs)
        if not self.outputs or (words and len(self.outputs) > 1):
            raise LambdafitError(
                f"--outputs {','.join(self.outputs)!r}: give auto, all, none, or a comma list of output names"
            )
        if self.reserved_concurrency is not None and self.reserved_concurrency < 0:
            raise LambdafitError("--reserved-concurrency must be 0 or more")
        if self.provisioned_concurrency is not None and self.provisioned_concurrency < 1:
            raise LambdafitError("--provisioned-concurrency must be 1 or more")
        if self.snapstart:
            from packager.snapstart import SnapStartError, conflicts

            if reasons := conflicts(self.python, self.provisioned_concurrency, 0):
                raise SnapStartError(f"--snapstart cannot apply: {'; '.join(reasons)}")
        if self.task is not None:
            from packager.convert_hf import HfTask

            _enum(HfTask, self.task, "task")

    def _coerce(self) -> None:
        """Strings and lists as the CLI parses them, for Python callers that pass them."""
        set_ = object.__setattr__
        if isinstance(self.budget, str):
            set_(self, "budget", Budget.parse(self.budget))
        kinds = {
            "package_type": PackageType,
            "arch": Arch,
            "objective": Objective,
            "memory_objective": MemoryObjective,
            "mode": Mode,
            "calibration_method": CalibrationMethod,
            "api": ApiKind,
            "auth": Auth,
        }
        for name, kind in kinds.items():
            value = getattr(self, name)
            if value is not None and not isinstance(value, kind):
                set_(self, name, _enum(kind, value, name.replace("_", "-")))
        for name in ("recipes", "labels", "batch_axes", "dims", "outputs"):
            set_(self, name, _split(getattr(self, name)))
        for item in fields(self):
            value = getattr(self, item.name)
            if item.type in ("Path", "Path | None") and isinstance(value, str):
                set_(self, item.name, Path(value))

    @property
    def package(self) -> PackageType:
        implied = self.budget.implied_package if self.budget else None
        return self.package_type or implied or PackageType.IMAGE

    @property
    def limit(self) -> Budget:
        if self.budget is not None:
            return self.budget
        return Budget.parse("zip" if self.package is PackageType.ZIP else "image")

    @property
    def bundle_dir(self) -> Path:
        return self.output_dir / self.name


def split_factory(spec: str, option: str = "MODEL") -> tuple[Path, str]:
    """`path/to/file.py:function` as (path, function)."""
    path, sep, function = spec.rpartition(":")
    if not (sep and path.endswith(".py") and function.isidentifier()):
        raise LambdafitError(f"{option} {spec!r} must be a factory path/to/file.py:function")
    return Path(path), function
