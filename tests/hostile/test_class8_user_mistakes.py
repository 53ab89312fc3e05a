"""#10 class 8: a user's mistake is one actionable line and exit 2, never an "internal error", a
traceback, or exit 0 without a bundle. Each case runs `lambdafit` the way a user does (its `main()`)."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import DIGITS
from tests.hostile.running import run_cli

FACTORY = DIGITS / "model.py"


def _classifier(path: Path, shape: list[int | str], classes: int = 3) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.random.default_rng(0).random((shape[-1], classes)).astype(np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["m"]), helper.make_node("Softmax", ["m"], ["probabilities"], axis=-1)],
        "classifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", classes])],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def _graph(path: Path, inputs: list[tuple[str, int, list[int | str]]], node: str, initializers: bool = False) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    values = [helper.make_tensor_value_info(name, kind, shape) for name, kind, shape in inputs]
    init = [numpy_helper.from_array(np.ones((2, 2), np.float32), inputs[0][0])] if initializers else []
    graph = helper.make_graph(
        [helper.make_node(node, [inputs[0][0]], ["y"])],
        "g",
        values,
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, inputs[0][2])],
        init,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 3 if initializers else 7
    onnx.save(model, path, save_as_external_data=False)


FACTORIES = {
    "exit0_at_import": "import sys\nsys.exit(0)\n",
    "exit3_in_forward": """
        import sys, torch
        class M(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = torch.nn.Linear(4, 3)
            def forward(self, x):
                sys.exit(3)
        def build():
            return M(), torch.rand(2, 4)
    """,
    "float64_example": """
        import torch
        def build():
            return torch.nn.Linear(4, 3), torch.rand(2, 4, dtype=torch.float64)
    """,
    "int_example": """
        import torch
        def build():
            return torch.nn.Linear(4, 3), torch.ones(2, 4, dtype=torch.int64)
    """,
    "wrong_shape_example": """
        import torch
        def build():
            return torch.nn.Linear(4, 3), torch.rand(2, 7)
    """,
    "returns_none": "def build():\n    return None\n",
    "raises": "def build():\n    raise FileNotFoundError('weights.pt')\n",
    "not_a_module": "def build():\n    return object(), [1, 2]\n",
}


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Models, data and factories that users get wrong."""
    root = tmp_path_factory.mktemp("mistakes")
    _classifier(root / "clf.onnx", ["batch", 4])
    _classifier(root / "huge.onnx", ["batch", 100_000, 100_000])
    _graph(root / "init.onnx", [("x", 1, [2, 2])], "Relu", initializers=True)
    _graph(root / "complex.onnx", [("z", 14, ["batch", 2])], "Identity")
    (root / "empty.onnx").write_bytes(b"")
    (root / "folder").mkdir()
    rng = np.random.default_rng(1)
    x = rng.random((20, 4)).astype(np.float32)
    classes = rng.integers(0, 3, 20)
    with_nan, with_inf = x.copy(), x.copy()
    with_nan[3, 1], with_inf[5, 2] = np.nan, np.inf
    arrays = {
        "ok": {"x": x, "labels": classes},
        "nan": {"x": with_nan, "labels": classes},
        "inf": {"x": with_inf},
        "float_labels": {"x": x, "labels": rng.random(20)},
        "2d_labels": {"x": x, "labels": rng.integers(0, 3, (20, 2))},
        "labels_out_of_range": {"x": x, "labels": rng.integers(0, 30, 20)},
        "negative_labels": {"x": x, "labels": -rng.integers(1, 3, 20)},
        "name_labels": {"x": x, "labels": np.array(["cat", "dog"] * 10)},
        "few_labels": {"x": x, "labels": classes[:7]},
        "bool_labels": {"x": x, "labels": classes > 0},
        "wrong_name": {"pixels": x},
        "wrong_width": {"x": rng.random((20, 5)).astype(np.float32)},
        "three_d": {"x": rng.random((20, 4, 1)).astype(np.float32)},
        "strings": {"x": np.array([["a"] * 4] * 20)},
        "zero_rows": {"x": np.zeros((0, 4), np.float32)},
    }
    for name, contents in arrays.items():
        np.savez(root / f"{name}.npz", **contents)  # type: ignore[arg-type]
    (root / "pickled.npz").write_bytes(b"PK\x03\x04 not really a zip")
    np.save(root / "plain.npy", x)
    np.save(root / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    import zipfile

    with zipfile.ZipFile(root / "objects.npz", "w") as archive:
        archive.write(root / "objects.npy", "x.npy")
    for name, code in FACTORIES.items():
        (root / f"{name}.py").write_text(textwrap.dedent(code))
    for name, info in {
        "not_json": "{",
        "old_format": json.dumps({"format_version": 0, "app": {}}),
        "no_app": json.dumps({"format_version": 1}),
        "url_api_key": None,
    }.items():
        bundle = root / "bundles" / name
        bundle.mkdir(parents=True)
        if info is None:
            app = {"name": "x", "description": "", "code_dir": "./function", "python": "3.12", "arch": "x86_64",
                   "memory_mb": 512, "package_type": "zip", "api": "url", "auth": "api-key", "settings": {}}  # fmt: skip
            info = json.dumps({"format_version": 1, "app": app})
        (bundle / "bundle.json").write_text(info)
    (root / "a_file").write_text("not a folder")
    return root


CLF = "{ws}/clf.onnx"
PACK_CASES: dict[str, tuple[list[str], str]] = {
    # the model
    "missing-model": (["{ws}/missing.onnx"], "does not exist"),
    "folder-as-model": (["{ws}/folder"], "is not a file"),
    "empty-onnx": (["{ws}/empty.onnx"], "is not a valid ONNX model"),
    "npz-as-model": (["{ws}/ok.npz"], "is not a valid ONNX model"),
    "inputs-all-initializers": (["{ws}/init.onnx"], "init.onnx takes no inputs"),
    "complex-input": (["{ws}/complex.onnx"], "holds complex64"),
    "huge-declared-shape": (["{ws}/huge.onnx"], "give --eval (or --calibration) data"),
    "factory-missing-function": ([f"{FACTORY}:nope"], "has no function nope()"),
    "factory-missing-file": (["{ws}/nofile.py:build"], "does not exist"),
    "factory-exit0-at-import": (["{ws}/exit0_at_import.py:build"], "called sys.exit(0)"),
    "factory-exit3-in-forward": (["{ws}/exit3_in_forward.py:build"], "called sys.exit(3)"),
    "factory-float64-example": (
        ["{ws}/float64_example.py:build"],
        "examples are input float64[2, 4] and the weights are float32",
    ),
    "factory-int-example": (["{ws}/int_example.py:build"], "examples are input int64[2, 4]"),
    "factory-wrong-shape-example": (["{ws}/wrong_shape_example.py:build"], "forward() fails on the factory's example"),
    "factory-returns-none": (["{ws}/returns_none.py:build"], "must return (model, example_inputs)"),
    "factory-raises": (["{ws}/raises.py:build"], "raised FileNotFoundError"),
    "factory-not-a-module": (["{ws}/not_a_module.py:build"], "returned a object"),
    # the data
    "eval-missing": ([CLF, "--eval", "{ws}/none.npz"], "does not exist"),
    "eval-not-npz": ([CLF, "--eval", "{ws}/pickled.npz"], "is not a readable .npz"),
    "eval-npy": ([CLF, "--eval", "{ws}/plain.npy"], "holds one array, not named arrays"),
    "eval-objects": ([CLF, "--eval", "{ws}/objects.npz"], "is not a readable .npz"),
    "eval-nan-inputs": ([CLF, "--eval", "{ws}/nan.npz"], "holds NaN or infinite values"),
    "eval-inf-inputs": ([CLF, "--eval", "{ws}/inf.npz"], "holds NaN or infinite values"),
    "calibration-nan-inputs": ([CLF, "--calibration", "{ws}/nan.npz"], "holds NaN or infinite values"),
    "eval-float-labels": ([CLF, "--eval", "{ws}/float_labels.npz"], "'labels' holds floats"),
    "eval-2d-labels": ([CLF, "--eval", "{ws}/2d_labels.npz"], "'labels' is shaped [20, 2]"),
    "eval-bool-labels": ([CLF, "--eval", "{ws}/bool_labels.npz"], "'labels' holds bool"),
    "eval-too-few-labels": ([CLF, "--eval", "{ws}/few_labels.npz"], "give one label per row"),
    "eval-labels-out-of-range": ([CLF, "--eval", "{ws}/labels_out_of_range.npz"], "the model scores 3 classes"),
    "eval-labels-out-of-range-named": (
        [CLF, "--eval", "{ws}/labels_out_of_range.npz", "--labels", "a,b,c"],
        "the model scores 3 classes",
    ),
    "eval-negative-labels": ([CLF, "--eval", "{ws}/negative_labels.npz"], "class indices run from 0"),
    "eval-name-labels-unnamed-classes": ([CLF, "--eval", "{ws}/name_labels.npz"], "pass --labels"),
    "eval-name-labels-unknown": (
        [CLF, "--eval", "{ws}/name_labels.npz", "--labels", "a,b,c"],
        "are not among the model's classes",
    ),
    "eval-labels-for-no-classifier": (["{ws}/huge_ok.onnx", "--eval", "{ws}/ok.npz"], "no output looks like class"),
    "eval-wrong-array-name": ([CLF, "--eval", "{ws}/wrong_name.npz"], "has arrays ['pixels']"),
    "eval-wrong-width": ([CLF, "--eval", "{ws}/wrong_width.npz"], "has 5 on axis 1"),
    "eval-three-d": ([CLF, "--eval", "{ws}/three_d.npz"], "is shaped [20, 4, 1]"),
    "eval-strings": ([CLF, "--eval", "{ws}/strings.npz"], "not numbers"),
    "eval-zero-rows": ([CLF, "--eval", "{ws}/zero_rows.npz"], "non-zero number of rows"),
    "labels-count": ([CLF, "--labels", "a,b"], "--labels name 2 classes but output probabilities scores 3"),
    "classifier-output-unknown": ([CLF, "--classifier-output", "nope"], "is not an output of the model"),
    # the options
    "budget-words": ([CLF, "--budget", "huge"], "cannot read budget 'huge'"),
    "budget-zero": ([CLF, "--budget", "0MB"], "must be larger than zero"),
    "budget-vs-package": ([CLF, "--budget", "zip", "--package", "image"], "drop one of them"),
    "max-drop-above-one": ([CLF, "--max-drop", "1.5"], "must be a fraction"),
    "max-drop-nan": ([CLF, "--max-drop", "nan"], "must be a fraction"),
    "python-unknown": ([CLF, "--python", "3.9"], "is not a Lambda runtime"),
    "recipe-unknown": ([CLF, "--recipes", "magic"], "magic"),
    "batch-axis-syntax": ([CLF, "--batch-axis", "x=abc"], "must be NAME=AXIS"),
    "batch-axis-unknown-input": ([CLF, "--batch-axis", "y=0"], "but the model's inputs are"),
    "student-syntax": ([CLF, "--student", "small"], "must be a factory"),
    "model-store-not-s3": ([CLF, "--model-store", "https://bucket/x"], "is not an S3 URI"),
    "url-with-api-key": ([CLF, "--api", "url", "--auth", "api-key"], "cannot enforce --auth api-key"),
    "http-with-api-key": ([CLF, "--api", "http", "--auth", "api-key"], "cannot enforce --auth api-key"),
    "output-is-a-file": ([CLF, "--output", "{ws}/a_file/sub"], "cannot write to"),
}
USAGE_CASES: dict[str, list[str]] = {
    "serve-port-too-large": ["serve", "{ws}/bundles/no_app", "--port", "99999"],
    "serve-port-65536": ["serve", "{ws}/bundles/no_app", "--port", "65536"],
    "serve-port-negative": ["serve", "{ws}/bundles/no_app", "--port", "-1"],
    "serve-port-words": ["serve", "{ws}/bundles/no_app", "--port", "abc"],
    "serve-workers-zero": ["serve", "{ws}/bundles/no_app", "--workers", "0"],
    "pack-reserved-negative": ["pack", CLF, "--name", "x", "--reserved-concurrency", "-1"],
    "pack-api-unknown": ["pack", CLF, "--name", "x", "--api", "grpc"],
}
SERVE_CASES: dict[str, tuple[list[str], str]] = {
    "serve-missing": (["{ws}/bundles/missing"], "is not a lambdafit bundle"),
    "serve-not-a-bundle": (["{ws}/folder"], "is not a lambdafit bundle"),
    "serve-damaged": (["{ws}/bundles/not_json"], "is damaged"),
    "serve-old-format": (["{ws}/bundles/old_format"], "pack again"),
    "serve-no-app": (["{ws}/bundles/no_app"], "is damaged"),
    "serve-url-with-api-key": (["{ws}/bundles/url_api_key"], "cannot enforce --auth api-key"),
    "serve-public-host": (["{ws}/bundles/no_app", "--host", "0.0.0.0"], "listens on loopback only"),
}


def _args(ws: Path, args: list[str]) -> list[str]:
    return [arg.format(ws=ws) for arg in args]


def _assert_one_line(err: str, out: str, code: int, expected: str) -> None:
    assert code == 2, err + out
    assert "Traceback" not in err + out and "internal error" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], err
    assert err.splitlines()[-1] == errors[0], err


@pytest.mark.parametrize("case", list(PACK_CASES))
def test_class8_pack_mistakes_are_one_line_and_exit_2(ws: Path, tmp_path: Path, case: str) -> None:
    if case == "eval-labels-for-no-classifier" and not (ws / "huge_ok.onnx").exists():
        _graph(ws / "huge_ok.onnx", [("x", 1, ["batch", 4])], "Relu")
    args, expected = PACK_CASES[case]
    model, *options = _args(ws, args)
    result = run_cli("pack", model, "--name", "mistake", "--output", str(tmp_path / "out"), "--recipes", "slim",
                     *options)  # fmt: skip
    _assert_one_line(result.err, result.out, result.code, expected)
    assert not (tmp_path / "out" / "mistake").exists()
    assert not (tmp_path / "out").exists() or [p.name for p in (tmp_path / "out").iterdir()] == []


@pytest.mark.parametrize("case", list(SERVE_CASES))
def test_class8_serve_mistakes_are_one_line_and_exit_2(ws: Path, case: str) -> None:
    args, expected = SERVE_CASES[case]
    result = run_cli("serve", *_args(ws, args), "--port", "0")
    _assert_one_line(result.err, result.out, result.code, expected)


@pytest.mark.parametrize("case", list(USAGE_CASES))
def test_class8_unparseable_options_are_usage_errors(ws: Path, case: str) -> None:
    """Values the option's type refuses are click's usage errors: exit 2, the option and the allowed range."""
    result = run_cli(*_args(ws, USAGE_CASES[case]))
    assert result.code == 2, result.err
    assert "Invalid value for '--" in result.err and "Traceback" not in result.err
    assert "internal error" not in result.err


def test_class8_serve_on_a_taken_port_is_one_line(digits_bundle: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = run_cli("serve", str(digits_bundle), "--port", str(taken.getsockname()[1]))
    _assert_one_line(result.err, result.out, result.code, "pick another --port")


def test_class8_a_bundle_is_never_reported_without_being_there(ws: Path, tmp_path: Path) -> None:
    """The one success path: exit 0 means the bundle is there, complete."""
    shutil.copyfile(ws / "clf.onnx", tmp_path / "clf.onnx")
    result = run_cli("pack", str(tmp_path / "clf.onnx"), "--name", "fine", "--output", str(tmp_path / "out"),
                     "--eval", str(ws / "ok.npz"), "--recipes", "slim")  # fmt: skip
    assert result.code == 0, result.err
    assert (tmp_path / "out" / "fine" / "bundle.json").is_file() and "wrote " in result.out
