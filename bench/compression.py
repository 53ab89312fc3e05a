"""lambdafit's recipes against the quantizers people reach for, per model, in one interleaved measurement.

    .venv/bin/python bench/compression.py                  # digits, the OCR recognizer and the OCR detector
    .venv/bin/python bench/compression.py --transformer    # also the 109 M-parameter transformer (minutes)
    .venv/bin/python bench/compression.py --models ocr-det

For each model, one `pack` measures lambdafit's candidates and the comparators together (the same
data, the same metric, every candidate timed in one process, interleaved in rounds):

- `ort-defaults`: onnxruntime's `quantize_static` with its defaults (QDQ, S8S8, per-tensor, MinMax);
- `optimum-vnni` and `optimum-avx2`: the parameters of Optimum's `AutoQuantizationConfig.avx512_vnni`
  and `.avx2` static configs (U8S8 and U8U8, per-channel, asymmetric activations, symmetric weights),
  passed to the same `quantize_static`: optimum-onnx itself pins transformers<4.58 and this venv has
  transformers 5, so it cannot be installed beside lambdafit.

Each row: size ratio, quality drop and p50 against fp32 with its 95% interval (batch 1). lambdafit's
choice is `packager.fit.choose` over lambdafit's own candidates only, with the same measurements; the
last line per model compares it with the fastest comparator within the allowed drop.
"""

from __future__ import annotations

import argparse
import json
import runpy
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from packager.config import Budget, Objective, PackConfig  # noqa: E402
from packager.errors import NoFitError  # noqa: E402
from packager.fit import FitResult, Measured, choose, interval, tied  # noqa: E402
from packager.host import Host  # noqa: E402
from packager.pack import pack  # noqa: E402
from packager.recipes import STEPS, RecipeContext, Step, Transform  # noqa: E402
from packager.recipes.quantize import QDQ_MIN_OPSET, CalibrationReader, upgrade_opset  # noqa: E402

MAX_DROP = 0.01
STATIC = ("slim+int8-static", "slim+int8-static-s8s8", "slim+int8-static-qop", "slim+int8-static-7bit")
COMPARATORS = ("ort-defaults", "optimum-vnni", "optimum-avx2")


class OrtStatic(Transform):
    """`quantize_static` with a comparator's parameters, on the model as exported (not slimmed), at opset
    13 at least: per-channel QDQ needs it, and a user of either tool would convert first."""

    def __init__(self, config: str) -> None:
        self.config = config

    def apply(self, source: Path, target: Path, ctx: RecipeContext) -> None:
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

        source = upgrade_opset(source, target, QDQ_MIN_OPSET)
        reader = CalibrationReader(ctx.calibration, ctx.calibration_rows)
        if self.config == "ort-defaults":
            quantize_static(str(source), str(target), reader)
            return
        weights = QuantType.QInt8 if self.config == "optimum-vnni" else QuantType.QUInt8
        quantize_static(
            str(source),
            str(target),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=weights,
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        )


for _name in COMPARATORS:
    STEPS[_name] = Step(_name, "__main__", "OrtStatic", f"comparator: {_name}", args=(_name,))


@dataclass(frozen=True)
class Case:
    model: str
    eval: Path
    calibration: Path
    recipes: tuple[str, ...]
    budget: str = "image"


def digits() -> Case:
    folder = ROOT / "examples/digits"
    if not (folder / "eval.npz").is_file():
        runpy.run_path(str(folder / "model.py"), run_name="__main__")
    recipes = ("slim", "slim+fp16", "slim+int8-dynamic", "slim+int8-dynamic-matmul", *STATIC)
    return Case(f"{folder}/model.py:build", folder / "eval.npz", folder / "train.npz", recipes)


def ocr_recognizer() -> Case:
    from examples.ocr.data import recognizer

    folder = ROOT / "examples/ocr"
    if not (folder / "eval.npz").is_file():
        runpy.run_path(str(folder / "data.py"), run_name="__main__")
    recipes = ("slim", "slim+fp16", "slim+int8-dynamic", "slim+int8-dynamic-matmul", *STATIC)
    return Case(str(recognizer()), folder / "eval.npz", folder / "calibration.npz", recipes)


def ocr_detector(work: Path) -> Case:
    """rapidocr's text detector on pages of rendered text lines (examples/ocr/data.py's renderer)."""
    from importlib import resources

    from PIL import Image

    from examples.ocr.data import FONTS, line_text, render

    rng = np.random.default_rng(3)
    mean, std = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)

    def page() -> np.ndarray:
        image = Image.new("RGB", (320, 320), (255, 255, 255))
        for line in range(6):
            text = render(line_text(rng), FONTS[line % len(FONTS)], rng)
            image.paste(text, (int(rng.integers(0, 60)), 8 + 52 * line))
        return (((np.asarray(image, np.float32) / 255 - mean) / std).transpose(2, 0, 1)).astype(np.float32)

    np.savez(work / "det-eval.npz", x=np.stack([page() for _ in range(24)]))
    np.savez(work / "det-calibration.npz", x=np.stack([page() for _ in range(16)]))
    model = Path(str(resources.files("rapidocr") / "models" / "PP-OCRv6_det_small.onnx"))
    recipes = ("slim", "slim+fp16", "slim+int8-dynamic", *STATIC)
    return Case(str(model), work / "det-eval.npz", work / "det-calibration.npz", recipes)


def transformer() -> Case:
    folder = ROOT / "examples/transformer"
    if not (folder / "eval.npz").is_file():
        runpy.run_path(str(folder / "model.py"), run_name="__main__")
    recipes = (
        "slim+int8-dynamic",
        "slim+int8-dynamic-matmul",
        "slim+int4",
        "slim+int8-static",
        "slim+int8-static-s8s8",
    )
    return Case(f"{folder}/model.py:build", folder / "eval.npz", folder / "calibration.npz", recipes, budget="zip")


def run(name: str, case: Case, out: Path) -> list[tuple[str, ...]]:
    config = PackConfig(
        model=case.model,
        name=name,
        output_dir=out,
        eval_data=case.eval,
        calibration_data=case.calibration,
        budget=Budget.parse(case.budget),
        recipes=(*case.recipes, *COMPARATORS),
        objective=Objective.LATENCY,
        max_drop=MAX_DROP,
        allow_slower=True,  # every candidate stays eligible; lambdafit's own choice is recomputed below
    )
    try:
        result = pack(config, progress=lambda message: print(f"  {name}: {message}", file=sys.stderr, flush=True))
    except NoFitError as error:
        print(f"{name}: {error}")
        return []
    fit = result.fit
    report = json.loads((out / name / "report.json").read_text())
    ours = [v.candidate for v in fit.verdicts if v.candidate.recipe not in COMPARATORS]
    choice = choose(ours, fit.baseline, budget_bytes=config.limit.limit_bytes, max_drop=MAX_DROP,
                    objective=Objective.LATENCY)  # fmt: skip
    return _rows(name, fit, choice, report["quality_kind"])


def _rows(name: str, fit: FitResult, choice: FitResult, kind: str) -> list[tuple[str, ...]]:
    base = fit.baseline
    rows: list[tuple[str, ...]] = []
    for verdict in fit.verdicts:
        candidate = verdict.candidate
        if not isinstance(candidate, Measured):
            rows.append((name, candidate.recipe, "failed", "", "", "", candidate.error[:70]))
            continue
        m = candidate.measurement
        low, high = interval(m)
        rows.append(
            (
                name,
                candidate.recipe,
                f"{base.size_bytes / m.size_bytes:.2f}x",
                f"{100 * (base.quality - m.quality):+.2f}",
                f"{m.p50_ms:.3f} [{low:.3f}-{high:.3f}]",
                f"{m.p50_ms / base.p50_ms:.2f}x [{low / base.p50_ms:.2f}-{high / base.p50_ms:.2f}]",
                "LAMBDAFIT'S CHOICE" if candidate is choice.chosen else _verdict(verdict.reason),
            )
        )
    chosen = choice.chosen.measurement
    comparators = [
        v.candidate
        for v in fit.verdicts
        if v.candidate.recipe in COMPARATORS
        and isinstance(v.candidate, Measured)
        and base.quality - v.candidate.measurement.quality <= MAX_DROP + 1e-9
    ]
    if comparators:
        best = min(comparators, key=lambda c: c.measurement.p50_ms)
        relation = (
            "as fast as (intervals overlap)"
            if tied(chosen, best.measurement)
            else ("faster than" if chosen.p50_ms < best.measurement.p50_ms else "SLOWER than")
        )
        summary = f"{choice.chosen.recipe} is {relation} {best.recipe}, the fastest comparator within the drop"
    else:
        summary = (
            f"no comparator stays within {100 * MAX_DROP:.0f} point of fp32; lambdafit chose {choice.chosen.recipe}"
        )
    rows.append((name, f"({kind})", "", "", "", "", summary))
    return rows


def _verdict(reason: str) -> str:
    return "slower than fp32" if "slower than fp32" in reason else reason


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transformer", action="store_true", help="include the 109 M-parameter transformer")
    parser.add_argument("--models", help="comma list of digits, ocr-rec, ocr-det, transformer")
    args = parser.parse_args()
    names = args.models.split(",") if args.models else ["digits", "ocr-rec", "ocr-det"]
    if args.transformer and "transformer" not in names:
        names.append("transformer")
    header = ("model", "recipe", "size vs fp32", "drop pts", "p50 ms [95% CI]", "p50 vs fp32 [CI]", "verdict")
    rows: list[tuple[str, ...]] = [header]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cases = {"digits": digits, "ocr-rec": ocr_recognizer, "ocr-det": lambda: ocr_detector(work),
                 "transformer": transformer}  # fmt: skip
        for name in names:
            rows += run(name, cases[name](), work / "out")
    host = Host.read()
    print(f"measured on {host.describe()}; batch 1, every model's candidates interleaved in one process")
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


if __name__ == "__main__":
    main()
