"""Real onnxruntime quantization schemes and the real exporters, on tiny models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from packager.data import Dataset
from packager.recipes import Recipe, RecipeContext
from packager.recipes import quantize as quantize_module

RNG = np.random.default_rng(0)


def conv_model(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(RNG.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32), "w")
    bias = numpy_helper.from_array(np.zeros(8, dtype=np.float32), "b")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("GlobalAveragePool", ["r"], ["y"]),
        ],
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8, 1, 1])],
        [weights, bias],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def zero_point_types(path: Path) -> dict[str, set[str]]:
    """The integer types of activations (QuantizeLinear) and weights (DequantizeLinear of initializers)."""
    import onnx

    model = onnx.load(str(path))
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    found: dict[str, set[str]] = {"activations": set(), "weights": set()}
    for node in model.graph.node:
        zero = initializers.get(node.input[2]) if len(node.input) > 2 else None
        if zero is None:
            continue
        kind = onnx.helper.tensor_dtype_to_np_dtype(zero.data_type).name
        if kind == "int32":  # a bias
            continue
        if node.op_type == "QuantizeLinear":
            found["activations"].add(kind)
        elif node.op_type == "DequantizeLinear" and node.input[0] in initializers:
            found["weights"].add(kind)
    return found


def test_static_schemes_share_one_calibration_and_differ_in_signedness(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import onnx

    batches: list[int] = []
    reader = quantize_module.CalibrationReader

    class Counting(reader):  # type: ignore[misc, valid-type]
        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = super().get_next()
            batches.append(0 if batch is None else 1)
            return batch

    monkeypatch.setattr(quantize_module, "CalibrationReader", Counting)
    source = conv_model(tmp_path / "fp32.onnx")
    data = Dataset({"x": RNG.random((16, 3, 16, 16), dtype=np.float32)}, {"x": 0}, None, "test")
    ctx = RecipeContext(work_dir=tmp_path, calibration=data)
    u8s8 = Recipe.parse("int8-static").apply(source, ctx)
    calibrated = sum(batches)
    s8s8 = Recipe.parse("int8-static-s8s8").apply(source, ctx)
    qop = Recipe.parse("int8-static-qop").apply(source, ctx)
    assert calibrated == 2 and sum(batches) == calibrated  # 16 rows in batches of 8, read once
    assert zero_point_types(u8s8) == {"activations": {"uint8"}, "weights": {"int8"}}
    assert zero_point_types(s8s8) == {"activations": {"int8"}, "weights": {"int8"}}
    assert "QLinearConv" in {node.op_type for node in onnx.load(str(qop)).graph.node}


def test_the_handler_session_optimizes_enough_for_qdq_fusion(tmp_path: Path) -> None:
    """U8S8 QDQ only becomes integer kernels at graph optimization EXTENDED or higher."""
    import onnxruntime

    from handlers.runtime import open_session

    session = open_session(conv_model(tmp_path / "m.onnx"))
    level = session.get_session_options().graph_optimization_level
    assert level.value >= onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED.value


UNPACKING = """
import torch


class Halves(torch.nn.Module):
    def forward(self, x):
        a, b = x.reshape(x.shape[0], 2, -1).transpose(0, 1)  # iterating over a tensor: the tracer warns
        return a * b


def build():
    return Halves().eval(), torch.ones(2, 4)
"""


def test_torchscript_goes_first_and_a_trace_that_may_not_generalize_goes_to_dynamo(
    tmp_path: Path, digits_files: dict[str, Path]
) -> None:
    import onnx

    from packager.export import export_torch
    from packager.load import LoadOptions, TorchModel, load_model
    from tests.conftest import DIGITS

    options = LoadOptions(work_dir=tmp_path)
    digits = load_model(f"{DIGITS / 'model.py'}:build", options)
    assert isinstance(digits, TorchModel)
    result = export_torch(digits, tmp_path / "digits.onnx")
    assert result.notes == () and result.max_abs_diff < 1e-4
    assert onnx.load(str(result.path)).opset_import[0].version == 17  # TorchScript's opset, not dynamo's
    factory = tmp_path / "halves.py"
    factory.write_text(UNPACKING)
    halves = load_model(f"{factory}:build", options)
    assert isinstance(halves, TorchModel)
    result = export_torch(halves, tmp_path / "halves.onnx")
    assert "exported with the dynamo exporter (TorchScript: the trace may not generalize" in result.notes[0]
    assert result.max_abs_diff < 1e-4
