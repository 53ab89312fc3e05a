"""Vendor the handler's runtime wheels for the target Lambda platform, so image builds are offline."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from packager.config import Arch
from packager.errors import WheelError
from packager.interrupt import run_child

RUNTIME_GLIBC = {"3.11": (2, 26), "3.12": (2, 34), "3.13": (2, 34)}
"""glibc of the Lambda base image: python3.11 runs on Amazon Linux 2, 3.12+ on Amazon Linux 2023."""

_PLATFORMS = {
    Arch.X86_64: ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux2014_x86_64"],
    Arch.ARM64: ["manylinux_2_28_aarch64", "manylinux_2_27_aarch64", "manylinux2014_aarch64"],
}


SLIM_DIR_NAMES = ("tests", "__pycache__")
SLIM_SUFFIXES = (".pyi",)
SLIM_PATHS = (
    "bin", "onnxruntime/tools", "onnxruntime/transformers", "onnxruntime/quantization", "onnxruntime/backend",
    "onnxruntime_genai/models",
)  # fmt: skip
"""What the runtime never loads: test suites, caches, type stubs, console scripts, and the build-time tool
folders of onnxruntime and onnxruntime-genai (its model builder). Removed from images and zips alike, and
left out of every size we report."""


def is_slimmed(member: str) -> bool:
    parts = member.split("/")
    if any(name in SLIM_DIR_NAMES for name in parts[:-1]) or member.endswith(SLIM_SUFFIXES):
        return True
    return any(member == path or member.startswith(path + "/") for path in SLIM_PATHS) or ".data/scripts/" in member


def slim_command(root: str) -> str:
    """The same rules as a shell command, for the Dockerfile."""
    names = " -o ".join(f"-name {name}" for name in SLIM_DIR_NAMES)
    suffixes = " -o ".join(f"-name '*{suffix}'" for suffix in SLIM_SUFFIXES)
    paths = " ".join(f"{root}/{path}" for path in SLIM_PATHS)
    return f"find {root} -depth \\( {names} -o {suffixes} \\) -exec rm -rf {{}} + && rm -rf {paths}"


@dataclass(frozen=True)
class WheelSet:
    wheels: tuple[Path, ...]
    requirements: tuple[str, ...]
    glibc_needed: tuple[int, int]

    @property
    def installed_bytes(self) -> int:
        """Uncompressed size of what the wheels install, after slimming: what counts against 250 MB."""
        return sum(self.sizes().values())

    @property
    def compressed_bytes(self) -> int:
        """The wheels' own (deflated) size: close to what they add to a zip upload."""
        return sum(wheel.stat().st_size for wheel in self.wheels)

    def sizes(self) -> dict[str, int]:
        """Installed bytes per distribution, after slimming, largest first."""
        sizes = {}
        for wheel in self.wheels:
            with zipfile.ZipFile(wheel) as archive:
                sizes[wheel.name.split("-")[0]] = sum(
                    info.file_size for info in archive.infolist() if not is_slimmed(info.filename)
                )
        return dict(sorted(sizes.items(), key=lambda item: -item[1]))


def runtime_requirements(extras: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The handler's pinned runtime requirements, plus those of the preprocessing `extras` asked for."""
    package = resources.files("handlers")
    lines = [line.strip() for line in package.joinpath("requirements.txt").read_text(encoding="utf-8").splitlines()]
    required = [line for line in lines if line and not line.startswith("#")]
    for line in package.joinpath("requirements-extra.txt").read_text(encoding="utf-8").splitlines():
        extra, sep, requirement = line.partition(":")
        if sep and not line.startswith("#") and extra.strip() in extras:
            required.append(requirement.strip())
    return tuple(required)


def cache_root() -> Path:
    return Path(os.environ.get("LAMBDAFIT_WHEEL_CACHE") or Path.home() / ".cache" / "lambdafit" / "wheels")


def vendor_wheels(python: str, arch: Arch, extras: tuple[str, ...] = (), *, wheel_dir: Path | None = None) -> WheelSet:
    """Wheels for the runtime requirements: from `wheel_dir` if given, else downloaded once and cached."""
    requirements = runtime_requirements(extras)
    if wheel_dir is not None:
        wheels = tuple(sorted(wheel_dir.glob("*.whl")))
        if not wheels:
            raise WheelError(f"--wheels {wheel_dir} holds no .whl files")
        return WheelSet(wheels, requirements, _glibc_needed(wheels))
    key = hashlib.sha256(json.dumps([requirements, python, arch.value, _PLATFORMS[arch]]).encode()).hexdigest()[:16]
    target = cache_root() / f"py{python}-{arch.value}-{key}"
    stamp = target / "complete.json"
    if not stamp.is_file():
        _download(requirements, python, arch, target)
        stamp.write_text(json.dumps(sorted(p.name for p in target.glob("*.whl"))))
    wheels = tuple(target / name for name in json.loads(stamp.read_text()))
    return WheelSet(wheels, requirements, _glibc_needed(wheels))


def _download(requirements: tuple[str, ...], python: str, arch: Arch, target: Path) -> None:
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        python,
        "--dest",
        str(staging),
    ]
    for platform in _PLATFORMS[arch]:
        command += ["--platform", platform]
    result = run_child([*command, *requirements])
    if result.returncode != 0:
        errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
        raise WheelError(
            f"could not download the runtime wheels for python {python} on {arch.value}: "
            f"{'; '.join(errors) or result.stderr.strip()[-300:]}. Check the network to the package index, "
            "or give pre-downloaded wheels with --wheels DIR"
        )
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def _glibc_needed(wheels: tuple[Path, ...]) -> tuple[int, int]:
    """The newest glibc any wheel needs: a wheel tagged for several works with the oldest of them."""
    needed = (2, 17)
    for wheel in wheels:
        tags = [(int(a), int(b)) for a, b in re.findall(r"manylinux_(\d+)_(\d+)", wheel.name)]
        if tags:
            needed = max(needed, min(tags))
    return needed


def glibc_warning(wheels: WheelSet, python: str) -> str | None:
    have = RUNTIME_GLIBC[python]
    if wheels.glibc_needed <= have:
        return None
    need = ".".join(map(str, wheels.glibc_needed))
    return (
        f"the runtime wheels need glibc {need} but the python{python} Lambda image has "
        f"{'.'.join(map(str, have))}: the bundle runs under a local emulation, not on AWS; pack with --python 3.13 (or 3.12)"
    )


def install_wheels(wheels: WheelSet, target: Path, python: str, arch: Arch) -> None:
    """Unpack the vendored wheels into a zip function's folder (offline), then slim it."""
    if not wheels.wheels:
        return
    folder = wheels.wheels[0].parent
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-index",
        "--find-links",
        str(folder),
        "--target",
        str(target),
        "--no-compile",
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        python,
    ]
    for platform in _PLATFORMS[arch]:
        command += ["--platform", platform]
    result = run_child([*command, *wheels.requirements])
    if result.returncode != 0:
        raise WheelError(f"could not install the runtime wheels into {target}: {result.stderr.strip()[-400:]}")
    for path in sorted(target.rglob("*"), reverse=True):
        member = path.relative_to(target).as_posix()
        if path.exists() and is_slimmed(member + ("/x" if path.is_dir() else "")):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
