"""`--recipes auto`: the candidates worth trying for this graph, fp32 first."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

MATMUL_HEAVY = 4


def auto_recipes(model: Path, *, torch_model: bool, train_data: bool, student: bool) -> list[str]:
    import onnx

    ops = Counter(node.op_type for node in onnx.load(str(model), load_external_data=False).graph.node)
    plan = ["fp32", "slim", "slim+fp16", "slim+int8-dynamic", "slim+int8-static"]
    if ops["MatMul"] + ops["Gemm"]:
        plan.append("slim+int8-dynamic-matmul")
    if ops["MatMul"] >= MATMUL_HEAVY:
        plan.append("slim+int4")
    if torch_model and train_data:
        plan += ["prune-0.5+slim", "prune-0.5+slim+int8-static"]
    if student:
        plan += ["student+slim", "student+slim+int8-static"]
    return plan
