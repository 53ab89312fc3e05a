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
from packager.config import DEFAULT_PYTHON, NAMED_BUDGETS, Arch, Budget, PackageType
from packager.errors import BudgetError, BundleError
from packager.interrupt import run_child
from packager.wheels import WheelSet

STAND_IN = "measured here: `docker image inspect` of the stand-in ../shared/lambda-emulation builds"


@dataclass(frozen=True)
class BaseImage:
    """What `FROM public.ecr.aws/lambda/python:TAG` adds to an image (OS, Python, runtime client)."""

    tag: str
    bytes: int
    source: str


BASE_IMAGES: dict[tuple[str, Arch], BaseImage] = {
    ("3.11", Arch.X86_64): BaseImage("3.11", 295_243_857, STAND_IN + " (Debian 12, Python 3.11.2)"),
    ("3.13", Arch.X86_64): BaseImage("3.13", 285_728_980, STAND_IN + " (Debian 13, Python 3.13.5)"),
    ("3.13", Arch.ARM64): BaseImage("3.13-arm64", 306_732_633, STAND_IN + " (Debian 13 arm64, Python 3.13.5)"),
    ("3.12", Arch.X86_64): BaseImage("3.12", 285_728_980, "estimate: no stand-in for 3.12; the python3.13 figure"),
    ("3.12", Arch.ARM64): BaseImage("3.12-arm64", 306_732_633, "estimate: no stand-in for 3.12; the 3.13-arm64 figure"),
    ("3.11", Arch.ARM64): BaseImage(
        "3.11-arm64", 306_732_633, "estimate: no 3.11-arm64 stand-in; the 3.13-arm64 figure"
    ),
}
"""The one table of base-image sizes. Measured on the offline stand-ins (the only images these machines can
reach; tests/integration checks the figures against `docker image inspect`), not on AWS's own images,
which are Amazon Linux and may differ by some tens of MB. Against the 10 GB image limit that error is
under 1%."""


def base_image(python: str, arch: Arch) -> BaseImage:
    return BASE_IMAGES[(python, arch)]


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
    python: str = DEFAULT_PYTHON
    arch: Arch = Arch.X86_64

    @property
    def handler_bytes(self) -> int:
        return sum(path.stat().st_size for path in handler_files())

    @property
    def base(self) -> BaseImage | None:
        return base_image(self.python, self.arch) if self.package is PackageType.IMAGE else None

    @property
    def base_bytes(self) -> int:
        return self.base.bytes if self.base is not None else 0

    def of(self, model_bytes: int, model_compressed_bytes: int | None) -> int:
        """The package a model of this size makes, as the budget counts it (zipped bytes: zip-upload)."""
        if self.budget.zipped:
            if model_compressed_bytes is None:
                raise BundleError(f"the {self.budget.name} budget counts zipped bytes: measure the zipped model")
            return self.wheels.compressed_bytes + self.handler_bytes + model_compressed_bytes + self.base_bytes
        return self.wheels.installed_bytes + self.handler_bytes + model_bytes + self.base_bytes

    def parts(self, model_bytes: int, bytecode_bytes: int = 0) -> dict[str, int]:
        """Installed bytes per part, for the report."""
        parts = {f"runtime wheels: {name}": size for name, size in self.wheels.sizes().items()}
        parts["handler code"] = self.handler_bytes
        parts["model"] = model_bytes
        if bytecode_bytes:
            parts["bytecode (.pyc)"] = bytecode_bytes
        if self.base is not None:
            parts[f"base image python:{self.base.tag} ({self.base.source.split(':')[0]})"] = self.base.bytes
        return parts

    @property
    def runtime_bytes(self) -> int:
        """Everything but the model, as the budget counts it."""
        return self.of(0, 0)

    def runtime_parts(self) -> str:
        parts = self.parts(0)
        parts.pop("model")
        largest = sorted(parts.items(), key=lambda item: -item[1])[:4]
        return ", ".join(f"{name.removeprefix('runtime wheels: ')} {size / 1e6:.1f} MB" for name, size in largest)

    def alternatives(self, model_bytes: int = 0) -> list[str]:
        """The package types and budgets in which this runtime and a model of `model_bytes` would fit."""
        options = []
        for name in ("zip-upload", "zip", "image"):
            budget = Budget.parse(name)
            package = budget.implied_package or PackageType.IMAGE
            other = PackageSize(package, budget, self.wheels, self.python, self.arch)
            need = other.of(model_bytes, model_bytes)
            if name != self.budget.name and need <= budget.limit_bytes:
                flag = f"--budget {name}" if package is PackageType.ZIP else "--package image"
                options.append(
                    f"{flag} ({need / 1e6:.0f} of {budget.limit_bytes / 1e6:,.0f} MB with the model"
                    + (f", base image python:{other.base.tag}" if other.base else "") + ")"
                )  # fmt: skip
        if self.package is PackageType.IMAGE:
            for arch in Arch:
                other_base = base_image(self.python, arch)
                if arch is not self.arch and other_base.bytes < self.base_bytes:
                    options.append(
                        f"--arch {arch.value} (its base image is {(self.base_bytes - other_base.bytes) / 1e6:.0f} MB "
                        "smaller; wheels differ too)"
                    )
        return options

    def over_budget(self, smallest_model: int, smallest_package: int) -> str:
        """Why no candidate fits when every one is over the budget: how much the runtime leaves the model."""
        runtime, limit = self.runtime_bytes, self.budget.limit_bytes
        options = self.alternatives(smallest_model)
        return (
            f"every candidate is over the {self.budget.name} budget of {limit / 1e6:.1f} MB (the smallest package is "
            f"{smallest_package / 1e6:.1f} MB): the runtime takes {runtime / 1e6:.1f} MB of it ({self.runtime_parts()}), "
            f"leaving {(limit - runtime) / 1e6:.1f} MB for the model, and the smallest candidate model is "
            f"{smallest_model / 1e6:.1f} MB. "
            + (f"What fits: {'; '.join(options)}" if options else "Try smaller --recipes (int4, prune-0.5+slim)")
        )

    def check_runtime(self) -> None:
        """Fail before measuring anything when the runtime alone fills the budget: no recipe can help."""
        runtime = self.runtime_bytes
        if runtime < self.budget.limit_bytes:
            return
        options = self.alternatives()
        raise BudgetError(
            f"the runtime alone is {runtime / 1e6:.1f} MB ({self.runtime_parts()}), over the {self.budget.name} "
            f"budget of {self.budget.limit_bytes / 1e6:.1f} MB before any model: no recipe or --max-drop can fix "
            "that, the runtime itself does not fit. "
            + (f"What fits: {'; '.join(options)}" if options else "No package type here fits it either")
        )

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
