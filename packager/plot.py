"""report.png: size against quality for every candidate, latency in the labels."""

from __future__ import annotations

from pathlib import Path

from packager.fit import FitResult, Measured


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
