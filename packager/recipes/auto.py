"""`--recipes auto`: the candidates worth trying for this graph, fp32 first."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from packager.config import Arch

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


STATIC_SCHEMES: dict[Arch, tuple[str, ...]] = {
    Arch.X86_64: ("int8-static", "int8-static-s8s8"),
    Arch.ARM64: ("int8-static-s8s8", "int8-static"),
}
"""The calibrated int8 configurations worth measuring per target: signedness decides whether x86_64's
fusions apply (U8S8 fast, S8S8 often slower than fp32); Arm's dot-product kernels take either. Earlier
in the list wins a tie at equal size."""


def auto_recipes(
    model: Path, *, torch_model: bool, train_data: bool, student: bool, arch: Arch = Arch.X86_64
) -> list[str]:
    ops = op_counts(model)
    if not sum(ops[op] for op in WEIGHT_OPS):
        return ["fp32", "slim"]
    plan = ["fp32", "slim", "slim+fp16", "slim+int8-dynamic", *(f"slim+{scheme}" for scheme in STATIC_SCHEMES[arch])]
    if ops["MatMul"] + ops["Gemm"]:
        plan.append("slim+int8-dynamic-matmul")
    if ops["MatMul"] >= MATMUL_HEAVY:
        plan.append("slim+int4")
    if torch_model and train_data:
        plan += ["prune-0.5+slim", "prune-0.5+slim+int8-static"]
    if student:
        plan += ["student+slim", "student+slim+int8-static"]
    return plan
