"""The Docker + AWS SAM CLI tier, through ../shared/lambda-emulation (offline, host network only).

`make test` runs its setup.sh first. Without it these tests fail, loudly: they are part of the suite.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

EMULATION = Path(os.environ.get("LAMBDA_EMULATION_DIR") or ROOT.parent / "shared" / "lambda-emulation")


def _offline_env() -> dict[str, str]:
    script = f"source {EMULATION / 'env.sh'} && env -0"
    raw = subprocess.run(["bash", "-c", script], capture_output=True, check=True).stdout
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


class Sam:
    def __init__(self) -> None:
        if not (EMULATION / "sam-hostnet").is_file():
            pytest.fail(f"no SAM emulation harness at {EMULATION}: set LAMBDA_EMULATION_DIR")
        if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
            pytest.fail(f"Docker is not running: run PYTHON=.venv/bin/python bash {EMULATION}/setup.sh")
        self.env = _offline_env()

    def run(self, *args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, str(EMULATION / "sam-hostnet"), *args]
        return subprocess.run(
            command, cwd=cwd, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )


@pytest.fixture(scope="session")
def sam() -> Sam:
    return Sam()


@pytest.fixture(scope="session")
def zip_http_bundle(tmp_path_factory: pytest.TempPathFactory, digits_files: dict[str, Path]) -> Path:
    """The digits model again, as a Zip package behind an HTTP API (payload format 2.0)."""
    from handlers.contract import ApiKind
    from packager.config import PackageType, PackConfig
    from packager.pack import pack
    from tests.conftest import DIGITS

    config = PackConfig(
        model=f"{DIGITS / 'model.py'}:build", name="digits", output_dir=tmp_path_factory.mktemp("zip"),
        eval_data=digits_files["eval"], calibration_data=digits_files["train"],
        package_type=PackageType.ZIP, api=ApiKind.HTTP, recipes=("slim+int8-static",),
    )  # fmt: skip
    return pack(config).bundle


def _build(sam: Sam, bundle: Path, work: Path) -> Path:
    shutil.copytree(bundle, work)
    result = sam.run("build", "-t", "template.yaml", cwd=work)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return work


@pytest.fixture(scope="session")
def built_bundles(
    sam: Sam, digits_bundle: Path, zip_http_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Both bundles after a real `sam build`: the image from vendored wheels, offline; the zip by its Makefile."""
    root = tmp_path_factory.mktemp("sam")
    return {
        "image-rest": _build(sam, digits_bundle, root / "image" / "digits"),
        "zip-http": _build(sam, zip_http_bundle, root / "zip" / "digits"),
    }


@pytest.fixture(scope="session")
def arm64_bundles(sam: Sam, digits_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The digits model for arm64, built by `sam build` under QEMU: an Image bundle (fp32, slimmed) and a
    Zip bundle (static int8, whose kernels differ most between x86_64 and aarch64)."""
    from packager.config import Arch, PackageType, PackConfig
    from packager.pack import pack
    from tests.conftest import DIGITS

    built = {}
    for package, recipe in ((PackageType.IMAGE, "slim"), (PackageType.ZIP, "slim+int8-static")):
        name = f"digits-arm-{package.value}"
        config = PackConfig(
            model=f"{DIGITS / 'model.py'}:build", name=name, output_dir=tmp_path_factory.mktemp(name),
            eval_data=digits_files["eval"], calibration_data=digits_files["train"], arch=Arch.ARM64,
            package_type=package, recipes=(recipe,),
        )  # fmt: skip
        bundle = pack(config).bundle
        built[package.value] = _build(sam, bundle, tmp_path_factory.mktemp("sam-arm64") / name)
    return built
