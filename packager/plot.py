"""report.png: size against quality for every candidate, latency in the labels; memory.png: cost and
latency against memory size, from the memory sweep."""

from __future__ import annotations

from pathlib import Path

from packager.fit import FitResult, Measured
from packager.memory import MemoryChoice


def plot(result: FitResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5), dpi=110)
    for verdict in result.verdicts:
        if not isinstance(verdict.candidate, Measured):
            continue
        m = verdict.candidate.measurement
        chosen = verdict.candidate is result.chosen
        color = "tab:green" if chosen else ("tab:blue" if verdict.eligible else "tab:red")
        axes.scatter(m.size_bytes / 1e6, m.quality, s=90 if chosen else 40, color=color, zorder=3)
        ratio = m.p50_ms / result.baseline.p50_ms
        axes.annotate(
            f"{verdict.candidate.recipe}\n{ratio:.2f}x p50",
            (m.size_bytes / 1e6, m.quality),
            textcoords="offset points",
            xytext=(6, 4),
            fontsize=7,
        )
    axes.set_xscale("log")
    axes.set_xlabel("model size (MB, log scale)")
    axes.set_ylabel(result.baseline.quality_kind)
    axes.set_title("candidates: green chosen, blue eligible, red rejected")
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def plot_memory(choice: MemoryChoice, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [p.memory_mb for p in choice.points]
    figure, latency = plt.subplots(figsize=(8, 5), dpi=110)
    cost = latency.twinx()
    latency.plot(sizes, [p.mean_ms for p in choice.points], "o-", color="tab:blue", label="mean duration")
    latency.fill_between(sizes, [p.p50_ms for p in choice.points], [p.p95_ms for p in choice.points],
                         color="tab:blue", alpha=0.15, label="p50-p95")  # fmt: skip
    cost.plot(sizes, [p.usd_per_million for p in choice.points], "s-", color="tab:orange", label="$ per million")
    chosen = choice.chosen
    latency.axvline(chosen.memory_mb, color="tab:green", linestyle="--", alpha=0.7)
    latency.annotate(f"chosen: {chosen.memory_mb} MB ({choice.objective.value})", (chosen.memory_mb, chosen.mean_ms),
                     textcoords="offset points", xytext=(6, 10), fontsize=8, color="tab:green")  # fmt: skip
    latency.set_xlabel("memory size (MB); CPU share = memory / 1,769 MB per vCPU")
    latency.set_ylabel("duration per request (ms)", color="tab:blue")
    cost.set_ylabel("cost per million requests (USD)", color="tab:orange")
    latency.set_yscale("log")
    latency.grid(True, alpha=0.3)
    latency.set_title("measured under the CPU quota of each size")
    handles = latency.get_legend_handles_labels()[0] + cost.get_legend_handles_labels()[0]
    labels = latency.get_legend_handles_labels()[1] + cost.get_legend_handles_labels()[1]
    latency.legend(handles, labels, loc="upper center", fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
