"""What `pack` measured and chose, as rows for the terminal, report.json and report.md."""

from __future__ import annotations

from typing import Any

from packager.fit import FitResult, Verdict

COLUMNS = (
    "recipe",
    "model MB",
    "package MB",
    "quality",
    "drop pts",
    "p50 ms",
    "p95 ms",
    "p50 b8 ms",
    "load ms",
    "verdict",
)


def rows(result: FitResult, budget_bytes: int) -> list[tuple[str, ...]]:
    return [_row(v, result, budget_bytes) for v in result.verdicts]


def _row(v: Verdict, result: FitResult, budget_bytes: int) -> tuple[str, ...]:
    m = v.candidate.measurement
    chosen = v.candidate is result.chosen
    verdict = ("CHOSEN" if chosen else "") or v.reason
    if m is None:
        return (v.candidate.recipe, *("-",) * 8, verdict)
    return (
        v.candidate.recipe,
        f"{m.size_bytes / 1e6:.3f}",
        f"{v.candidate.package_bytes / 1e6:.1f}/{budget_bytes / 1e6:.0f}",
        f"{m.quality:.4f}",
        f"{100 * (v.drop or 0):+.2f}",
        f"{m.p50_ms:.3f}",
        f"{m.p95_ms:.3f}",
        f"{m.p50_batch8_ms:.3f}",
        f"{m.load_ms:.1f}",
        verdict,
    )


def to_json(result: FitResult, *, budget: dict[str, Any], parts: dict[str, int], notes: list[str]) -> dict[str, Any]:
    return {
        "chosen": result.chosen.recipe,
        "why": result.why,
        "quality_kind": result.baseline.quality_kind.value,
        "budget": budget,
        "package_parts_bytes": parts,
        "notes": notes,
        "candidates": [
            v.candidate.to_dict() | {"eligible": v.eligible, "verdict": v.reason, "drop": v.drop}
            for v in result.verdicts
        ],
    }


def to_markdown(name: str, result: FitResult, budget_bytes: int, parts: dict[str, int], notes: list[str]) -> str:
    lines = [
        f"# lambdafit report: {name}",
        "",
        f"Chosen: **{result.chosen.recipe}** ({result.why}).",
        f"Quality is {result.baseline.quality_kind.value}. Latency is onnxruntime `run` with the handler's session",
        "settings, batch 1 unless noted, median of 100 runs on the packing machine.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows(result, budget_bytes)]
    lines += ["", "Package parts (installed bytes):", ""]
    lines += [f"- {part}: {size / 1e6:.1f} MB" for part, size in parts.items()]
    if notes:
        lines += ["", "Notes:", ""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"
