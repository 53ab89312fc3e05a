"""lambdafit's build-time side: export, optimize, measure, fit, bundle, emulate."""

from packager.config import Arch, Budget, Objective, PackageType, PackConfig
from packager.errors import LambdafitError

__all__ = ["Arch", "Budget", "LambdafitError", "Objective", "PackConfig", "PackageType"]
