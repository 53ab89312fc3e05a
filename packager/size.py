"""What a package weighs against its budget: the one owner of package-size rules.

A budget counts everything that ships: the runtime wheels for the target (installed and slimmed, or
zipped for the 50 MB direct-upload limit), the handler code, the model, the bytecode, and for images
the base image.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import handlers
from packager.config import NAMED_BUDGETS, Budget, PackageType
from packager.errors import BundleError
from packager.interrupt import run_child
from packager.wheels import WheelSet

BASE_IMAGE_BYTES = 600_000_000
"""About what public.ecr.aws/lambda/python adds to an image (OS, Python, runtime client)."""
ZIP_LIMIT = NAMED_BUDGETS["zip"]
ZIP_UPLOAD_LIMIT = NAMED_BUDGETS["zip-upload"]


def handler_files() -> list[Path]:
    return sorted(Path(handlers.__file__).resolve().parent.glob("*.py"))


def tree_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


@dataclass(frozen=True)
class PackageSize:
    package: PackageType
    budget: Budget
    wheels: WheelSet

    @property
    def handler_bytes(self) -> int:
        return sum(path.stat().st_size for path in handler_files())

    @property
    def base_bytes(self) -> int:
        return BASE_IMAGE_BYTES if self.package is PackageType.IMAGE else 0

    def of(self, model_bytes: int, model_compressed_bytes: int) -> int:
        """The package a model of this size makes, as the budget counts it."""
        if self.budget.zipped:
            return self.wheels.compressed_bytes + self.handler_bytes + model_compressed_bytes + self.base_bytes
        return self.wheels.installed_bytes + self.handler_bytes + model_bytes + self.base_bytes

    def parts(self, model_bytes: int, bytecode_bytes: int = 0) -> dict[str, int]:
        """Installed bytes per part, for the report."""
        parts = {f"runtime wheels: {name}": size for name, size in self.wheels.sizes().items()}
        parts["handler code"] = self.handler_bytes
        parts["model"] = model_bytes
        if bytecode_bytes:
            parts["bytecode (.pyc)"] = bytecode_bytes
        if self.package is PackageType.IMAGE:
            parts["base image (estimate)"] = self.base_bytes
        return parts

    def zipped_estimate(self, model_compressed_bytes: int) -> int:
        return self.wheels.compressed_bytes + model_compressed_bytes


def check_zip_tree(function: Path) -> None:
    """Lambda refuses a zip over 250 MB unzipped: say so now, with the largest parts, not at deploy time."""
    sizes: dict[str, int] = {}
    for path in function.rglob("*"):
        if path.is_file():
            top = path.relative_to(function).parts[0]
            sizes[top] = sizes.get(top, 0) + path.stat().st_size
    total = sum(sizes.values())
    if total > ZIP_LIMIT:
        largest = ", ".join(
            f"{name} {size / 1e6:.1f} MB" for name, size in sorted(sizes.items(), key=lambda i: -i[1])[:4]
        )
        raise BundleError(
            f"the zip package is {total / 1e6:.1f} MB unzipped, {(total - ZIP_LIMIT) / 1e6:.1f} MB over Lambda's 250 MB "
            f"limit; largest parts: {largest}. Use --package image (10 GB) or a smaller recipe"
        )


def runtime_interpreter(python: str) -> str | None:
    """An interpreter of the runtime's Python version: this one, or `pythonX.Y` on PATH. Bytecode is
    specific to the version, not to the machine, so an x86_64 interpreter compiles an arm64 zip too."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == python:
        return sys.executable
    return shutil.which(f"python{python}")


def bytecode_note(python: str) -> str | None:
    if runtime_interpreter(python) is not None:
        return None
    return (
        f"the zip ships no .pyc files: no python{python} on PATH to compile them with, so each cold start "
        f"compiles the handler and its packages in memory (/var/task is read-only); put a python{python} on PATH "
        "or use --package image, whose build compiles them"
    )


def compile_bytecode(function: Path, python: str) -> int:
    """Ship .pyc files (Lambda's /var/task is read-only: otherwise every cold start compiles again) when
    an interpreter of the runtime's version is at hand and they still fit in 250 MB. Returns the bytes
    they add."""
    interpreter = runtime_interpreter(python)
    if interpreter is None:
        return 0
    run_child(
        [interpreter, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(function)]
    )
    compiled = list(function.rglob("*.pyc"))
    added = sum(path.stat().st_size for path in compiled)
    if tree_bytes(function) > ZIP_LIMIT:
        for path in compiled:
            path.unlink()
        return 0
    return added
