"""The fitter's evidence: real models, real recipes, measured and chosen (issue: fit any model)."""

from __future__ import annotations

import json
import os
import runpy
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from packager.cli import app
from tests.conftest import DIGITS, ROOT

pytestmark = pytest.mark.slow
runner = CliRunner()
OCR = ROOT / "examples" / "ocr"


def pack(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["pack", *args])
    return result.exit_code, result.output


def report(bundle: Path) -> dict[str, dict[str, object]]:
    data = json.loads((bundle / "report.json").read_text())
    return {"_": data} | {c["recipe"]: c for c in data["candidates"]}


def test_pruning_with_distillation_halves_parameters_within_one_point(
    tmp_path: Path, digits_files: dict[str, Path]
) -> None:
    code, output = pack(
        f"{DIGITS / 'model.py'}:build",
        "--name",
        "pruned",
        "--output",
        str(tmp_path),
        "--eval",
        str(digits_files["eval"]),
        "--train",
        str(digits_files["train"]),
        "--recipes",
        "prune-0.5+slim",
        "--allow-slower",
    )
    assert code == 0, output
    rows = report(tmp_path / "pruned")
    teacher, student = rows["fp32"], rows["prune-0.5+slim"]
    assert teacher["parameters"] / student["parameters"] >= 2.0  # type: ignore[operator]
    assert teacher["metrics"]["quality"] - student["metrics"]["quality"] <= 0.01  # type: ignore[index]
    assert rows["_"]["chosen"] == "prune-0.5+slim"


@pytest.fixture(scope="module")
def ocr_data() -> dict[str, Path]:
    if not (OCR / "eval.npz").is_file():
        runpy.run_path(str(OCR / "data.py"), run_name="__main__")
    return {"eval": OCR / "eval.npz", "calibration": OCR / "calibration.npz"}


def test_ocr_recognizer_from_the_rapidocr_wheel(tmp_path: Path, ocr_data: dict[str, Path]) -> None:
    """Static per-channel int8 keeps exact match at 3.5x smaller; default dynamic int8 fails the drop."""
    from examples.ocr.data import recognizer

    code, output = pack(
        str(recognizer()),
        "--name",
        "ocr",
        "--output",
        str(tmp_path),
        "--eval",
        str(ocr_data["eval"]),
        "--calibration",
        str(ocr_data["calibration"]),
        "--recipes",
        "slim+int8-dynamic,slim+int8-static",
        "--objective",
        "size",
        "--allow-slower",
    )
    assert code == 0, output
    rows = report(tmp_path / "ocr")
    assert rows["_"]["quality_kind"] == "exact match of decoded text"
    fp32 = rows["fp32"]["metrics"]
    assert fp32["quality"] >= 0.95  # type: ignore[index, operator]
    dynamic = rows["slim+int8-dynamic"]
    assert dynamic["eligible"] is False
    assert str(dynamic["verdict"]).startswith("drop ")
    assert rows["_"]["chosen"] == "slim+int8-static"
    static = rows["slim+int8-static"]["metrics"]
    assert fp32["size_bytes"] / static["size_bytes"] >= 3.5  # type: ignore[index, operator]
    assert fp32["quality"] - static["quality"] <= 0.01  # type: ignore[index, operator]
    assert "exact match" in output


def test_zip_budget_writes_a_zip_function_that_fits(tmp_path: Path, digits_files: dict[str, Path]) -> None:
    code, output = pack(
        f"{DIGITS / 'model.py'}:build",
        "--name",
        "digits",
        "--output",
        str(tmp_path),
        "--eval",
        str(digits_files["eval"]),
        "--budget",
        "zip",
        "--recipes",
        "slim+int8-static",
    )
    assert code == 0, output
    bundle = tmp_path / "digits"
    template = yaml.safe_load((bundle / "template.yaml").read_text())
    fn = template["Resources"]["DigitsFunction"]
    assert fn["Properties"]["PackageType"] == "Zip"
    assert fn["Properties"]["Runtime"] == "python3.13"
    assert fn["Metadata"]["BuildMethod"] == "makefile"
    function = bundle / "function"
    assert (function / "onnxruntime").is_dir() and not (function / "onnxruntime" / "transformers").exists()
    assert not list(function.rglob("tests"))
    unzipped = sum(p.stat().st_size for p in function.rglob("*") if p.is_file())
    assert unzipped < 262_144_000
    parts = json.loads((bundle / "report.json").read_text())["package_parts_bytes"]
    assert abs(sum(parts.values()) - unzipped) / unzipped < 0.05


def test_nothing_fits_exits_2_naming_the_closest_candidate(tmp_path: Path, digits_files: dict[str, Path]) -> None:
    """A budget the runtime fits in with 10 kB to spare: every candidate model is larger than that."""
    from packager.config import Arch, Budget, PackageType
    from packager.size import PackageSize
    from packager.wheels import vendor_wheels

    python = os.environ.get("LAMBDAFIT_PYTHON", "3.11")
    wheels = vendor_wheels(python, Arch.X86_64)
    runtime = PackageSize(PackageType.ZIP, Budget.parse("zip"), wheels, python).runtime_bytes
    budget = runtime + 10_000
    code, output = pack(
        f"{DIGITS / 'model.py'}:build",
        "--name",
        "digits",
        "--output",
        str(tmp_path),
        "--eval",
        str(digits_files["eval"]),
        "--package",
        "zip",
        "--python",
        python,
        "--budget",
        f"{budget}B",
        "--recipes",
        "slim+int8-static",
    )
    flat = " ".join(output.split())
    assert code == 2, output
    assert f"every candidate is over the {budget}B budget of {budget / 1e6:.1f} MB" in flat
    assert f"the runtime takes {runtime / 1e6:.1f} MB of it" in flat
    assert "leaving 0.0 MB for the model" in flat
    assert "recipe" in output  # the table of what was measured comes first
    assert not (tmp_path / "digits").exists()


def test_bad_inputs_each_get_one_line_and_exit_2(tmp_path: Path, digits_files: dict[str, Path]) -> None:
    from examples.ocr.data import recognizer

    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(recognizer().read_bytes()[:100_000])
    raising = tmp_path / "factory.py"
    raising.write_text("def build():\n    raise RuntimeError('weights file missing')\n")
    cases = [
        ([str(truncated)], "is not a valid ONNX model"),
        ([f"{raising}:build"], "factory " + str(raising) + ":build raised RuntimeError: weights file missing"),
        ([f"{DIGITS / 'model.py'}:build", "--recipes", "slim+int9"], "unknown recipe step int9"),
        ([f"{DIGITS / 'model.py'}:build", "--recipes", "slim+prune-0.5"], "must be the first step"),
        ([f"{DIGITS / 'model.py'}:build", "--budget", "zip", "--package", "image"], "is a zip limit"),
    ]
    for args, message in cases:
        code, output = pack(*args, "--name", "bad", "--output", str(tmp_path / "out"))
        assert code == 2, (args, output)
        assert message in " ".join(output.split()), (args, output)
        assert "Traceback" not in output
        assert not (tmp_path / "out" / "bad").exists()


def test_transformer_over_the_zip_limit_gets_a_recipe_that_fits(tmp_path: Path) -> None:
    """109 M parameters from a config (random weights): fp32 cannot ship as a zip; the fitter finds one."""
    folder = ROOT / "examples" / "transformer"
    if not (folder / "eval.npz").is_file():
        runpy.run_path(str(folder / "model.py"), run_name="__main__")
    code, output = pack(
        f"{folder / 'model.py'}:build",
        "--name",
        "bert",
        "--output",
        str(tmp_path),
        "--budget",
        "zip",
        "--eval",
        str(folder / "eval.npz"),
        "--calibration",
        str(folder / "calibration.npz"),
        "--recipes",
        "slim+int8-dynamic,slim+int4",
    )
    assert code == 0, output
    rows = report(tmp_path / "bert")
    assert rows["fp32"]["parameters"] >= 100_000_000  # type: ignore[operator]
    assert rows["fp32"]["package_bytes"] > 262_144_000  # type: ignore[operator]
    assert str(rows["fp32"]["verdict"]).startswith("over budget by")
    chosen = rows[str(rows["_"]["chosen"])]
    assert chosen["package_bytes"] <= 262_144_000  # type: ignore[operator]
    assert rows["_"]["quality_kind"] == "top-1 agreement with fp32"
    assert chosen["metrics"]["quality"] >= 0.99  # type: ignore[index, operator]
    unzipped = sum(p.stat().st_size for p in (tmp_path / "bert" / "function").rglob("*") if p.is_file())
    assert unzipped <= 262_144_000
    notes = " ".join(rows["_"]["notes"])  # type: ignore[arg-type]
    assert "over the 50 MB direct-upload limit: sam deploy uploads it through S3" in notes


STUDENT = """
import sys

import torch

sys.path.insert(0, {root!r})
from examples.digits.model import DigitsCNN


def build():
    return DigitsCNN(width=8).eval(), torch.zeros(1, 64)
"""


def test_distillation_into_a_smaller_student(tmp_path: Path, digits_files: dict[str, Path]) -> None:
    student = tmp_path / "student.py"
    student.write_text(STUDENT.format(root=str(ROOT)))
    code, output = pack(
        f"{DIGITS / 'model.py'}:build",
        "--name",
        "student",
        "--output",
        str(tmp_path / "out"),
        "--eval",
        str(digits_files["eval"]),
        "--train",
        str(digits_files["train"]),
        "--student",
        f"{student}:build",
        "--recipes",
        "student+slim",
        "--allow-slower",
    )
    assert code == 0, output
    rows = report(tmp_path / "out" / "student")
    teacher, small = rows["fp32"], rows["student+slim"]
    assert teacher["parameters"] / small["parameters"] >= 5  # type: ignore[operator]
    assert small["metrics"]["quality"] >= 0.9  # type: ignore[index, operator]


def test_zip_upload_budget_counts_zipped_bytes(tmp_path: Path, digits_files: dict[str, Path]) -> None:
    code, output = pack(
        f"{DIGITS / 'model.py'}:build",
        "--name",
        "digits",
        "--output",
        str(tmp_path),
        "--eval",
        str(digits_files["eval"]),
        "--budget",
        "zip-upload",
        "--recipes",
        "slim+int8-static",
    )
    assert code == 0, output
    rows = report(tmp_path / "digits")
    chosen = rows["slim+int8-static"]
    assert chosen["package_bytes"] < 52_428_800 < 100_000_000  # type: ignore[operator]
    assert rows["_"]["budget"]["package"] == "zip"
