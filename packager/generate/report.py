"""The report of a text-generation pack: the fitter's verdicts with generation columns (perplexity and
greedy agreement against fp32, time to first token, tokens per second, peak memory)."""

from __future__ import annotations

from dataclasses import dataclass

from packager.fit import FitResult, Judged, Measured, Verdict
from packager.generate.measure import GenerationMeasurement
from packager.report import Report, format_count

COLUMNS = (
    "recipe",
    "params",
    "model MB",
    "package MB / budget",
    "perplexity",
    "quality",
    "drop pts",
    "greedy agree",
    "TTFT ms",
    "tokens/s",
    "load ms",
    "peak RSS MB",
    "verdict",
)


def is_generation(judged: Judged) -> bool:
    return isinstance(judged.baseline, GenerationMeasurement)


def rows(judged: Judged, budget_bytes: int) -> list[tuple[str, ...]]:
    chosen = judged.chosen if isinstance(judged, FitResult) else None
    base = judged.baseline
    assert isinstance(base, GenerationMeasurement)
    return [_row(verdict, base, chosen, budget_bytes) for verdict in judged.verdicts]


def _row(v: Verdict, base: GenerationMeasurement, chosen: Measured | None, budget_bytes: int) -> tuple[str, ...]:
    candidate = v.candidate
    verdict = "CHOSEN" if candidate is chosen else v.reason
    if not isinstance(candidate, Measured) or not isinstance(candidate.measurement, GenerationMeasurement):
        return (candidate.recipe, *("-",) * (len(COLUMNS) - 2), verdict)
    m = candidate.measurement
    return (
        candidate.recipe,
        format_count(candidate.parameters),
        f"{m.size_bytes / 1e6:.2f}",
        f"{candidate.package_bytes / 1e6:.1f} / {budget_bytes / 1e6:.0f}",
        f"{m.perplexity:.2f} ({100 * (m.perplexity / base.perplexity - 1):+.1f}%)",
        f"{m.quality:.4f}",
        f"{100 * (v.drop or 0):+.2f}",
        f"{m.agreement:.4f}",
        f"{m.ttft_ms:.1f}",
        f"{m.tokens_per_s:.0f} ({m.tokens_per_s / base.tokens_per_s:.2f}x)",
        f"{m.load_ms:.0f}",
        f"{m.peak_rss_mb:.0f}",
        verdict,
    )


@dataclass(frozen=True)
class GenerationReport(Report):
    eval_source: str = ""
    context_length: int = 0
    timeout_s: int = 0
    streaming: bool = False

    def to_json(self) -> dict[str, object]:
        return super().to_json() | {
            "task": "text-generation",
            "eval_source": self.eval_source,
            "eval_tokens": self.eval_rows,
            "context_length": self.context_length,
            "timeout_s": self.timeout_s,
            "streaming": self.streaming,
        }

    title = " (text generation)"
    columns = COLUMNS

    def how_measured(self) -> list[str]:
        return [
            f"Quality is {self.fit.baseline.quality_kind}: perplexity on {self.eval_rows} tokens of {self.eval_source}, in",
            "windows scored from an empty cache; greedy agree is the share of those positions where the most likely",
            "next token equals fp32's. TTFT is a 32-token prompt's pass and the first token; tokens/s is greedy",
            "decoding after it (median of 3, onnxruntime-genai with the bundle's settings on the packing machine).",
            "Peak RSS is a fresh process that loaded the model and held a KV cache for the whole context.",
        ]

    def rows(self) -> list[tuple[str, ...]]:
        return rows(self.fit, self.budget.limit_bytes)

    def function_section(self) -> list[str]:
        front = "streams (Runtime API streaming mode)" if self.streaming else "answers buffered"
        return [
            "",
            f"Function: {self.cost.memory_mb} MB (measured peak RSS with headroom), timeout {self.timeout_s} s, "
            f"context {self.context_length} tokens; the endpoint {front}. Estimated cost: "
            f"${self.cost.usd_per_million:.2f} per million requests ({self.cost.assumptions}).",
        ]
