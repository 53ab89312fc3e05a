"""`--recipes auto`: the candidates worth trying for this graph, fp32 first."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

MATMUL_HEAVY = 4
WEIGHT_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm", "LSTM", "GRU", "RNN", "Attention", "MatMulNBits")
"""Ops whose weights quantization shrinks; a graph without them (tree ensembles, ai.onnx.ml linear
models) only gets slimmed."""


def op_counts(model: Path) -> Counter[str]:
    """Op types in the graph and in its subgraphs (If/Loop branches hold weights too)."""
    import onnx

    counts: Counter[str] = Counter()

    def walk(graph: Any) -> None:
        for node in graph.node:
            counts[node.op_type] += 1
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.GRAPH:
                    walk(attribute.g)
                for sub in attribute.graphs:
                    walk(sub)

    walk(onnx.load(str(model), load_external_data=False).graph)
    return counts


def weight_ops(model: Path) -> int:
    ops = op_counts(model)
    return sum(ops[op] for op in WEIGHT_OPS)


def auto_recipes(model: Path, *, torch_model: bool, train_data: bool, student: bool) -> list[str]:
    ops = op_counts(model)
    if not sum(ops[op] for op in WEIGHT_OPS):
        return ["fp32", "slim"]
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
