"""packager.probe in a real fresh onnxruntime process: the thread count it is told is the one it runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from handlers.manifest import TensorSpec
from handlers.runtime import visible_cores
from packager.data import make_dataset
from packager.measure import cold_start
from tests.conftest import matmul_model


def test_the_probe_runs_at_the_threads_it_is_given_and_else_one_per_core(tmp_path: Path) -> None:
    model = matmul_model(tmp_path / "m.onnx", np.ones((3, 2), dtype=np.float32))
    spec = TensorSpec("x", "float32", ("batch", 3), batch_axis=0)
    data = make_dataset({"x": np.ones((4, 3), dtype=np.float32)}, None, (spec,), "test")
    assert cold_start(model, data, 1, threads=1)["intra_op_threads"] == 1
    assert cold_start(model, data, 1, threads=3)["intra_op_threads"] == 3
    assert cold_start(model, data, 1)["intra_op_threads"] == visible_cores()
