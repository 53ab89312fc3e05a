"""Honest budgets: the base image by runtime and architecture from one table, and a budget the runtime
itself cannot meet named as such, with what would fit."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from packager.config import PYTHON_VERSIONS, Arch, Budget, PackageType
from packager.errors import NoFitError
from packager.size import BASE_IMAGES, PackageSize, base_image
from packager.wheels import WheelSet


def test_every_runtime_and_architecture_has_a_base_image_and_says_where_its_size_comes_from() -> None:
    assert set(BASE_IMAGES) == {(python, arch) for python in PYTHON_VERSIONS for arch in Arch}
    for image in BASE_IMAGES.values():
        assert 200e6 < image.bytes < 700e6
        assert image.source.startswith(("measured here", "estimate:"))
    assert base_image("3.11", Arch.X86_64).source.startswith("measured here")


def wheels(tmp_path: Path, megabytes: int) -> WheelSet:
    path = tmp_path / "onnxruntime-1.0-cp312-none-any.whl"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("onnxruntime/capi/lib.so", b"\0" * megabytes * 1_000_000)
    return WheelSet((path,), ("onnxruntime==1.0",), (2, 17))


def test_an_image_counts_the_base_of_its_runtime_and_architecture(tmp_path: Path) -> None:
    vendored = wheels(tmp_path, 1)
    x86 = PackageSize(PackageType.IMAGE, Budget.parse("image"), vendored, "3.13", Arch.X86_64)
    arm = PackageSize(PackageType.IMAGE, Budget.parse("image"), vendored, "3.13", Arch.ARM64)
    assert (
        arm.runtime_bytes - x86.runtime_bytes
        == base_image("3.13", Arch.ARM64).bytes - base_image("3.13", Arch.X86_64).bytes
    )
    parts = x86.parts(1000)
    assert parts["base image python:3.13 (measured here)"] == base_image("3.13", Arch.X86_64).bytes
    zipped = PackageSize(PackageType.ZIP, Budget.parse("zip"), vendored, "3.13", Arch.X86_64)
    assert zipped.base is None and not any("base image" in part for part in zipped.parts(1000))


def test_a_runtime_over_the_budget_says_so_and_what_fits(tmp_path: Path) -> None:
    size = PackageSize(PackageType.ZIP, Budget.parse("zip-upload"), wheels(tmp_path, 60), "3.12", Arch.X86_64)
    with pytest.raises(NoFitError) as caught:
        size.check_runtime()
    message = str(caught.value)
    assert message.startswith("the runtime alone is 60.")
    assert "over the zip-upload budget of 52.4 MB before any model" in message
    assert "no recipe or --max-drop can fix that" in message
    assert "What fits: --budget zip (60 of 262 MB with the model)" in message
    assert "--package image (" in message and "base image python:3.12" in message


def test_an_arm64_image_is_told_that_x86_64_has_the_smaller_base(tmp_path: Path) -> None:
    size = PackageSize(PackageType.IMAGE, Budget.parse("300MB"), wheels(tmp_path, 1), "3.13", Arch.ARM64)
    with pytest.raises(NoFitError, match=r"--arch x86_64 \(its base image is 21 MB smaller"):
        size.check_runtime()


def test_when_every_candidate_is_over_the_budget_the_runtimes_share_is_named(tmp_path: Path) -> None:
    size = PackageSize(PackageType.ZIP, Budget.parse("80MB"), wheels(tmp_path, 60), "3.12", Arch.X86_64)
    size.check_runtime()
    message = size.over_budget(smallest_model=30_000_000, smallest_package=90_000_000)
    assert "the runtime takes 60." in message and "leaving 19." in message
    assert "the smallest candidate model is 30.0 MB" in message and "--budget zip (" in message
