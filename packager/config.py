"""Typed settings for `pack`, resolved in one place: argument > environment > default."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from handlers.app import ApiKind
from packager.errors import LambdafitError

MB = 1_000_000


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


class Auth(StrEnum):
    """Who may call the endpoint. Closed by default: AWS IAM (SigV4-signed requests)."""

    IAM = "iam"
    API_KEY = "api-key"
    NONE = "none"


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

PYTHON_VERSIONS = ("3.11", "3.12", "3.13")
DEFAULT_PYTHON = "3.12"
"""python3.12 and later run on Amazon Linux 2023 (glibc 2.34); python3.11 on Amazon Linux 2 (glibc 2.26),
too old for the onnxruntime and numpy wheels the handler pins."""


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


def budget_and_package(budget: str | None, package: PackageType | None) -> tuple[Budget, PackageType]:
    """`--budget zip` implies a zip package, `--package zip` a zip budget; image is the default."""
    if budget is None:
        kind = package or PackageType.IMAGE
        return Budget.parse("zip" if kind is PackageType.ZIP else "image"), kind
    parsed = Budget.parse(budget)
    implied = PackageType.ZIP if parsed.name in ("zip", "zip-upload") else None
    if package is not None and implied is not None and package is not implied:
        raise LambdafitError(f"--budget {budget} is a zip limit but --package is {package.value}: drop one of them")
    return parsed, package or implied or PackageType.IMAGE


def resolve(argument: str | None, env_var: str, default: str) -> str:
    """An explicit argument beats the environment, which beats the default."""
    if argument is not None:
        return argument
    return os.environ.get(env_var) or default


@dataclass(frozen=True)
class PackConfig:
    model: str
    name: str
    output_dir: Path = Path("build")
    eval_data: Path | None = None
    calibration_data: Path | None = None
    max_drop: float = 0.01
    budget: Budget = field(default_factory=lambda: Budget.parse("image"))
    package_type: PackageType = PackageType.IMAGE
    arch: Arch = Arch.X86_64
    python: str = DEFAULT_PYTHON
    objective: Objective = Objective.LATENCY
    recipes: tuple[str, ...] = ("auto",)
    labels: tuple[str, ...] = ()
    force: bool = False
    wheel_dir: Path | None = None
    train_data: Path | None = None
    student: str | None = None
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
    """JSON describing image or text requests (handlers/codecs.py); tensors only when absent."""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,62}", self.name):
            raise LambdafitError(
                f"name {self.name!r} must start with a letter and hold only letters, digits and '-' "
                "(it names the CloudFormation stack and the function)"
            )
        if not 0 <= self.max_drop < 1:
            raise LambdafitError(f"--max-drop {self.max_drop} must be a fraction in [0, 1), e.g. 0.01 for 1 point")
        if self.python not in PYTHON_VERSIONS:
            raise LambdafitError(f"python {self.python!r} is not a Lambda runtime here; use one of {PYTHON_VERSIONS}")

    @property
    def bundle_dir(self) -> Path:
        return self.output_dir / self.name
