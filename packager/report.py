"""What `pack` measured and chose: one `Report`, built once from the final state, rendered to the
terminal table, report.json, report.md and report.png."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packager.config import Arch, Budget, PackageType
from packager.cost import CostEstimate
from packager.fit import FitResult, Judged, Measured, Verdict
from packager.memory import MemoryChoice
from packager.snapstart import SnapStartChoice

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


def rows(judged: Judged, budget_bytes: int) -> list[tuple[str, ...]]:
    return [tuple(row[column] for column in COLUMNS) for row in cells(judged, budget_bytes)]


def cells(judged: Judged, budget_bytes: int) -> list[dict[str, str]]:
    """Each candidate's row as text by column name: COLUMNS, plus `package MB` alone (for tables that
    state the budget once)."""
    chosen = judged.chosen if isinstance(judged, FitResult) else None
    return [_cells(v, judged, chosen, budget_bytes) for v in judged.verdicts]


def _cells(v: Verdict, judged: Judged, chosen: Measured | None, budget_bytes: int) -> dict[str, str]:
    candidate = v.candidate
    verdict = "CHOSEN" if candidate is chosen else v.reason
    if not isinstance(candidate, Measured):
        return dict.fromkeys(COLUMNS + EXTRA_COLUMNS, "-") | {"recipe": candidate.recipe, "verdict": verdict}
    m = candidate.measurement
    base = judged.baseline
    p50, p50_ratio = f"{m.p50_ms:.3f}", f"{m.p50_ms / base.p50_ms:.2f}x"
    p50_b8, p50_b8_ratio = f"{m.p50_batch8_ms:.3f}", f"{m.p50_batch8_ms / base.p50_batch8_ms:.2f}x"
    package = f"{candidate.package_bytes / 1e6:.1f}"
    return {
        "recipe": candidate.recipe,
        "params": _count(candidate.parameters),
        "model MB": f"{m.size_bytes / 1e6:.3f}",
        "package MB / budget": f"{package} / {budget_bytes / 1e6:.0f}",
        "package MB": package,
        "quality": f"{m.quality:.4f}",
        "drop pts": f"{100 * (v.drop or 0):+.2f}",
        "p50 b1 ms": f"{p50} ({p50_ratio})",
        "p95 b1 ms": f"{m.p95_ms:.3f}",
        "p50 b8 ms": f"{p50_b8} ({p50_b8_ratio})",
        "init ms": f"{m.init_ms:.0f}",
        "peak RSS MB": f"{m.peak_rss_mb:.0f}",
        "verdict": verdict,
    }


EXTRA_COLUMNS = ("package MB",)


def _count(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


@dataclass(frozen=True)
class Report:
    name: str
    fit: FitResult
    budget: Budget
    package: PackageType
    parts: dict[str, int]
    """Installed bytes of each part of the package that ships."""
    notes: tuple[str, ...]
    cost: CostEstimate
    eval_rows: int
    export_max_abs_diff: float | None = None
    snapstart: SnapStartChoice | None = None
    memory: MemoryChoice | None = None
    """The memory sweep MemorySize was chosen from; None when MemorySize follows the peak RSS."""
    arch: Arch = Arch.X86_64

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "chosen": self.fit.chosen.recipe,
            "why": self.fit.why,
            "quality_kind": self.fit.baseline.quality_kind,
            "budget": {"name": self.budget.name, "limit_bytes": self.budget.limit_bytes, "package": self.package.value},
            "package_parts_bytes": self.parts,
            "package_bytes": sum(self.parts.values()),
            "notes": list(self.notes),
            "export_max_abs_diff": self.export_max_abs_diff,
            "cost": self.cost.to_dict(),
            "eval_rows": self.eval_rows,
            "snapstart": self.snapstart.to_dict() if self.snapstart else None,
            "memory": self.memory.to_dict() if self.memory else None,
            "arch": self.arch.value,
            "candidates": [
                v.candidate.to_dict() | {"eligible": v.eligible, "verdict": v.reason, "drop": v.drop}
                for v in self.fit.verdicts
            ],
        }

    def to_markdown(self) -> str:
        fit = self.fit
        lines = [
            f"# lambdafit report: {self.name}",
            "",
            f"Chosen: **{fit.chosen.recipe}** ({fit.why}).",
            "",
            f"Quality is {fit.baseline.quality_kind}, on {self.eval_rows} rows. Latency is onnxruntime `run` with the",
            "handler's session settings on the packing machine, median (p50) and p95; b1 and b8 are batch sizes,",
            "ratios are against fp32. Init is session creation plus the first run in a fresh process; peak RSS is",
            "that process's.",
            "",
            "| " + " | ".join(COLUMNS) + " |",
            "|" + "---|" * len(COLUMNS),
        ]
        lines += ["| " + " | ".join(row) + " |" for row in rows(fit, self.budget.limit_bytes)]
        lines += ["", "![size against quality](report.png)", "", "Package parts (installed bytes):", ""]
        lines += [f"- {part}: {size / 1e6:.2f} MB" for part, size in self.parts.items()]
        lines += [f"- total: {sum(self.parts.values()) / 1e6:.2f} MB ({self.package.value} package)"]
        if self.memory is None:
            lines += [
                "",
                f"Memory: {self.cost.memory_mb} MB (measured peak RSS with headroom). Estimated cost: "
                f"${self.cost.usd_per_million:.2f} per million requests ({self.cost.assumptions}).",
            ]
        else:
            lines += self.memory_section()
        if self.arch is Arch.ARM64:
            lines += [
                "",
                "arm64: the recipes were chosen by latencies measured on this x86_64 machine; how each quantization "
                "runs on Graviton2 (Neoverse N1: dot-product instructions, no i8mm) was not measured.",
            ]
        if self.snapstart is not None:
            lines += ["", self.snapstart.describe() + "."]
        if self.export_max_abs_diff is not None:
            lines += ["", f"torch -> ONNX parity: max abs difference {self.export_max_abs_diff:.3g}."]
        if self.notes:
            lines += ["", "Notes:", ""] + [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"

    def memory_section(self) -> list[str]:
        assert self.memory is not None
        m = self.memory
        return [
            "",
            f"Memory: **{m.chosen.memory_mb} MB**, chosen for {m.objective.value}: {m.why}. Each size was measured "
            f"with {m.method}; sizes start at the peak RSS with 30% headroom ({m.floor_mb} MB). Durations are per "
            "request with requests back to back; cost per million is duration (billed per ms) plus requests, "
            "API Gateway not included.",
            "",
            *m.table(),
            "",
            "![cost and latency against memory](memory.png)",
        ]

    def write(self, folder: Path) -> None:
        from packager.plot import plot, plot_memory

        (folder / "report.json").write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        (folder / "report.md").write_text(self.to_markdown(), encoding="utf-8")
        plot(self.fit, folder / "report.png")
        if self.memory is not None:
            plot_memory(self.memory, folder / "memory.png")
