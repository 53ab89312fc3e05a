"""`lambdafit pack` end to end through the CLI: the bundle it writes, and what it refuses."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from handlers.manifest import Manifest, sha256_file
from packager.cli import app
from tests.conftest import DIGITS

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_bundle_is_a_complete_sam_app(digits_bundle: Path) -> None:
    for part in [
        "template.yaml",
        "samconfig.toml",
        "report.json",
        "report.md",
        "function/Dockerfile",
        "function/requirements.txt",
        "function/handlers/lambda_function.py",
        "function/model/model.onnx",
        "function/model/manifest.json",
        "events/predict-rest.json",
    ]:
        assert (digits_bundle / part).is_file(), part
    manifest = Manifest.load(digits_bundle / "function" / "model")
    assert manifest.sha256 == sha256_file(digits_bundle / "function" / "model" / "model.onnx")
    assert manifest.inputs[0].shape == ("batch", 64)
    assert manifest.task == "classification" and manifest.labels == tuple("0123456789")
    wheels = {p.name.split("-")[0] for p in (digits_bundle / "function" / "wheels").glob("*.whl")}
    assert {"numpy", "onnxruntime", "aws_lambda_powertools"} <= wheels
    dockerfile = (digits_bundle / "function" / "Dockerfile").read_text()
    assert "--no-index" in dockerfile and 'CMD ["handlers.lambda_function.lambda_handler"]' in dockerfile


def test_report_shows_an_int8_recipe_within_one_point_and_smaller(digits_bundle: Path) -> None:
    report = json.loads((digits_bundle / "report.json").read_text())
    rows = {c["recipe"]: c for c in report["candidates"]}
    fp32 = rows["fp32"]["metrics"]
    assert fp32["quality"] >= 0.95
    static = rows["slim+int8-static"]
    assert static["eligible"], static["verdict"]
    assert fp32["quality"] - static["metrics"]["quality"] <= 0.01
    assert fp32["size_bytes"] / static["metrics"]["size_bytes"] >= 3.5
    chosen = rows[report["chosen"]]
    assert chosen["eligible"] and chosen["drop"] <= 0.01
    assert report["chosen"] == "slim+int8-static"  # latencies here differ by microseconds: a tie, so the smallest
    assert report["export_max_abs_diff"] < 1e-4


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("missing.onnx", "does not exist"),
        (str(DIGITS / "eval.npz"), "is not a valid ONNX model"),
        (str(DIGITS / "model.py") + ":nope", "has no function nope()"),
    ],
)
def test_pack_refuses_bad_models_with_exit_2(
    tmp_path: Path, model: str, message: str, digits_files: dict[str, Path]
) -> None:
    code, output = run("pack", model, "--name", "x", "--output", str(tmp_path / "out"))
    assert code == 2
    assert message in output
    assert "Traceback" not in output
    assert not (tmp_path / "out" / "x").exists()


def test_pack_refuses_an_unwritable_output(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, output = run("pack", str(DIGITS / "model.py") + ":build", "--name", "x", "--output", str(blocker / "sub"))
    assert code == 2
    assert "cannot write to" in output
    assert blocker.read_text() == "not a folder"


def test_pack_refuses_unparseable_budget_and_mismatched_data(tmp_path: Path, digits_files: dict[str, Path]) -> None:
    code, output = run("pack", str(DIGITS / "model.py") + ":build", "--name", "x", "--budget", "huge")
    assert (code, "cannot read budget 'huge'" in output) == (2, True)
    import numpy as np

    bad = tmp_path / "bad.npz"
    np.savez(bad, pixels=np.zeros((3, 64), dtype=np.float32))
    code, output = run(
        "pack",
        str(DIGITS / "model.py") + ":build",
        "--name",
        "x",
        "--eval",
        str(bad),
        "--output",
        str(tmp_path),
    )
    assert code == 2
    assert "has arrays ['pixels'] but the model takes inputs ['x']" in output


def test_existing_bundle_is_kept_unless_forced_and_survives_a_failed_repack(
    tmp_path: Path, digits_bundle: Path
) -> None:
    import shutil

    out = tmp_path / "out"
    shutil.copytree(digits_bundle, out / "digits")
    before = sha256_file(out / "digits" / "function" / "model" / "model.onnx")
    code, output = run("pack", str(DIGITS / "model.py") + ":build", "--name", "digits", "--output", str(out))
    assert code == 2 and "already exists; pass --force" in output
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07garbage")
    original = hashlib.sha256(corrupt.read_bytes()).hexdigest()
    code, output = run("pack", str(corrupt), "--name", "digits", "--output", str(out), "--force")
    assert code == 2
    assert sha256_file(out / "digits" / "function" / "model" / "model.onnx") == before
    assert sorted(p.name for p in out.iterdir()) == ["digits"]
    assert hashlib.sha256(corrupt.read_bytes()).hexdigest() == original
