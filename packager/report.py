"""What `pack` measured and chose, as rows for the terminal, report.json and report.md."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from packager.fit import FitResult, Verdict

if TYPE_CHECKING:
    from packager.cost import CostEstimate

COLUMNS = (
    "recipe",
    "params",
    "model MB",
    "package MB / budget",
    "quality",
    "drop pts",
    "p50 b1 ms",
    "p95 b1 ms",
    "p50 b8 ms",
    "init ms",
    "peak RSS MB",
    "verdict",
)


def rows(result: FitResult, budget_bytes: int) -> list[tuple[str, ...]]:
    return [_row(v, result, budget_bytes) for v in result.verdicts]


def _row(v: Verdict, result: FitResult, budget_bytes: int) -> tuple[str, ...]:
    m = v.candidate.measurement
    base = result.baseline
    verdict = "CHOSEN" if v.candidate is result.chosen else v.reason
    if m is None:
        return (v.candidate.recipe, *("-",) * (len(COLUMNS) - 2), verdict)
    return (
        v.candidate.recipe,
        _count(v.candidate.parameters),
        f"{m.size_bytes / 1e6:.3f}",
        f"{v.candidate.package_bytes / 1e6:.1f} / {budget_bytes / 1e6:.0f}",
        f"{m.quality:.4f}",
        f"{100 * (v.drop or 0):+.2f}",
        f"{m.p50_ms:.3f} ({m.p50_ms / base.p50_ms:.2f}x)",
        f"{m.p95_ms:.3f}",
        f"{m.p50_batch8_ms:.3f} ({m.p50_batch8_ms / base.p50_batch8_ms:.2f}x)",
        f"{m.init_ms:.0f}",
        f"{m.peak_rss_mb:.0f}",
        verdict,
    )


def _count(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def to_json(result: FitResult, *, budget: dict[str, Any], parts: dict[str, int], notes: list[str]) -> dict[str, Any]:
    return {
        "chosen": result.chosen.recipe if result.chosen else None,
        "why": result.why,
        "quality_kind": result.baseline.quality_kind,
        "budget": budget,
        "package_parts_bytes": parts,
        "notes": notes,
        "candidates": [
            v.candidate.to_dict() | {"eligible": v.eligible, "verdict": v.reason, "drop": v.drop}
            for v in result.verdicts
        ],
    }


def to_markdown(
    name: str, result: FitResult, budget_bytes: int, parts: dict[str, int], notes: list[str], cost: CostEstimate
) -> str:
    lines = [
        f"# lambdafit report: {name}",
        "",
        f"Chosen: **{result.chosen.recipe if result.chosen else 'nothing'}** ({result.why}).",
        "",
        f"Quality is {result.baseline.quality_kind}. Latency is onnxruntime `run` with the handler's session",
        "settings on the packing machine, median (p50) and p95; b1 and b8 are batch sizes, ratios are against fp32.",
        "Init is session creation plus the first run in a fresh process; peak RSS is that process's.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows(result, budget_bytes)]
    lines += ["", "![size against quality](report.png)", "", "Package parts (installed bytes):", ""]
    lines += [f"- {part}: {size / 1e6:.2f} MB" for part, size in parts.items()]
    lines += [
        "",
        f"Memory: {cost.memory_mb} MB (measured peak RSS with headroom). Estimated cost: "
        f"${cost.usd_per_million:.2f} per million requests ({cost.assumptions}).",
    ]
    if notes:
        lines += ["", "Notes:", ""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"
