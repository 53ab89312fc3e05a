"""What `pack` measured and chose: one `Report`, built once from the final state, rendered to the
terminal table, report.json, report.md and report.png."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

from packager.config import Arch, Budget, PackageType
from packager.cost import CostEstimate
from packager.fit import FitResult, Judged, Measured, Verdict
from packager.host import Host
from packager.memory import MemoryChoice
from packager.snapstart import SnapStartChoice

COLUMNS = (
    "recipe",
    "params",
    "model MB",
    "package MB / budget",
    "quality",
    "drop pts",
    "p50 b1 ms [95% CI]",
    "p95 b1 ms",
    "p50 b8 ms",
    "init ms",
    "peak RSS MB",
    "verdict",
)


def columns(judged: Judged) -> tuple[str, ...]:
    """The table's columns: a text-generation pack's have generation metrics (packager.generate.report)."""
    from packager.generate import report as generation

    return generation.COLUMNS if generation.is_generation(judged) else COLUMNS


def rows(judged: Judged, budget_bytes: int) -> list[tuple[str, ...]]:
    from packager.generate import report as generation

    if generation.is_generation(judged):
        return generation.rows(judged, budget_bytes)
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
    p50_b8, p50_b8_ratio = f"{m.p50_batch8_ms:.3f}", f"{m.p50_batch8_ms / base.p50_batch8_ms:.2f}x"
    package = f"{candidate.package_bytes / 1e6:.1f}"
    return {
        "recipe": candidate.recipe,
        "params": format_count(candidate.parameters),
        "model MB": f"{m.size_bytes / 1e6:.3f}",
        "package MB / budget": f"{package} / {budget_bytes / 1e6:.0f}",
        "package MB": package,
        "quality": f"{m.quality:.4f}",
        "drop pts": f"{100 * (v.drop or 0):+.2f}",
        "p50 b1 ms [95% CI]": _p50(m.p50_ms, *m.p50_interval, base.p50_ms),
        "p50 b1 ms": f"{m.p50_ms:.3f} ({m.p50_ms / base.p50_ms:.2f}x)",
        "p95 b1 ms": f"{m.p95_ms:.3f}",
        "p50 b8 ms": f"{p50_b8} ({p50_b8_ratio})",
        "init ms": f"{m.init_ms:.0f}",
        "peak RSS MB": f"{m.peak_rss_mb:.0f}",
        "verdict": verdict,
    }


EXTRA_COLUMNS = ("package MB", "p50 b1 ms")
"""Shorter forms the terminal table uses (packager.console)."""


def _p50(p50: float, low: float, high: float, base: float) -> str:
    return f"{p50:.3f} [{low:.3f}-{high:.3f}] ({p50 / base:.2f}x)"


def format_count(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


@dataclass(frozen=True)
class ShippedQuality:
    """The chosen model's quality at the intra-op threads the bundle ships with, beside the quality every
    candidate was measured with (at one thread per visible core)."""

    threads: int
    quality: float
    measured_threads: int
    measured_quality: float

    def note(self) -> str | None:
        """A note when the two differ: what a user's requests will get is the shipped figure."""
        if self.quality == self.measured_quality:
            return None
        return (
            f"at the {self.threads} onnxruntime thread(s) the bundle ships with, the chosen model's quality is "
            f"{self.quality:.6f} (measured {self.measured_quality:.6f} at {self.measured_threads}): some int8 "
            "kernels answer differently with fewer threads"
        )


@dataclass(frozen=True)
class PackResources:
    """What the pack itself cost: wall time and peak memory."""

    seconds: float
    peak_rss_mb: float
    """The packing process's high-water mark (torch, the export, the recipes' transforms)."""
    workers_peak_rss_mb: float
    """The largest measuring or timing process's own high-water mark."""

    def describe(self) -> str:
        return (
            f"Pack: {self.seconds:.1f} s; peak memory {self.peak_rss_mb:.0f} MB in the packing process, "
            f"{self.workers_peak_rss_mb:.0f} MB in the largest measuring process."
        )


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
    host: Host | None = None
    """The CPU the candidates were measured on."""
    resources: PackResources | None = None
    snapstart: SnapStartChoice | None = None
    memory: MemoryChoice | None = None
    """The memory sweep MemorySize was chosen from; None when MemorySize follows the peak RSS."""
    arch: Arch = Arch.X86_64
    shipped_quality: ShippedQuality | None = None
    """The chosen model measured again at the threads it ships with, when those differ from the fit's."""

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
            "measured_on": None
            if self.host is None
            else {"arch": self.host.arch, "cpu": self.host.model, "features": list(self.host.features)},
            "pack": None if self.resources is None else asdict(self.resources),
            "snapstart": self.snapstart.to_dict() if self.snapstart else None,
            "memory": self.memory.to_dict() if self.memory else None,
            "arch": self.arch.value,
            "shipped_quality": asdict(self.shipped_quality) if self.shipped_quality else None,
            "candidates": [
                v.candidate.to_dict() | {"eligible": v.eligible, "verdict": v.reason, "drop": v.drop}
                for v in self.fit.verdicts
            ],
        }

    title = ""
    """What follows the model's name in report.md's heading."""
    columns: ClassVar[tuple[str, ...]] = COLUMNS

    def to_markdown(self) -> str:
        fit = self.fit
        lines = [
            f"# lambdafit report: {self.name}{self.title}",
            "",
            f"Chosen: **{fit.chosen.recipe}** ({fit.why}).",
            "",
            *self.how_measured(),
            "",
            "| " + " | ".join(self.columns) + " |",
            "|" + "---|" * len(self.columns),
        ]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows()]
        lines += ["", "![size against quality](report.png)", "", "Package parts (installed bytes):", ""]
        lines += [f"- {part}: {size / 1e6:.2f} MB" for part, size in self.parts.items()]
        lines += [f"- total: {sum(self.parts.values()) / 1e6:.2f} MB ({self.package.value} package)"]
        lines += self.function_section()
        if self.notes:
            lines += ["", "Notes:", ""] + [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"

    def how_measured(self) -> list[str]:
        """The paragraph above the table: what its columns measure, and how."""
        return [
            f"Quality is {self.fit.baseline.quality_kind}, on {self.eval_rows} rows. Latency is onnxruntime `run` with the",
            "handler's session settings on the packing machine, every candidate in one process, interleaved in",
            "rounds: p50 is the median of the rounds with its 95% confidence interval, p95 over every call; b1",
            "and b8 are batch sizes, ratios are against fp32. Candidates whose intervals overlap count as equally",
            "fast (the smaller wins); a candidate is slower than fp32 only when the intervals are apart. Init is",
            "session creation plus the first run in a fresh process; peak RSS is that process's.",
            *self.shipped_line(),
        ]

    def shipped_line(self) -> list[str]:
        shipped = self.shipped_quality
        if shipped is None:
            return []
        same = "the same as" if shipped.quality == shipped.measured_quality else "against"
        return [
            f"Quality was measured at {shipped.measured_threads} onnxruntime threads (one per core here); the chosen "
            f"model measured again at the {shipped.threads} thread(s) its memory size ships with: {shipped.quality:.6f}, "
            f"{same} {shipped.measured_quality:.6f}.",
        ]

    def rows(self) -> list[tuple[str, ...]]:
        return rows(self.fit, self.budget.limit_bytes)

    def function_section(self) -> list[str]:
        """Below the package parts: the function's memory and cost, and what else the pack decided."""
        lines: list[str] = []
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
        if self.resources is not None:
            lines += ["", self.resources.describe()]
        return lines

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
