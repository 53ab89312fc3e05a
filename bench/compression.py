"""Per model and recipe, in one run: size ratio, quality drop, and latency against fp32 onnxruntime
and against torch eager (for torch models), at batch 1, medians.

    .venv/bin/python bench/compression.py                 # digits and the rapidocr recognizer
    .venv/bin/python bench/compression.py --transformer   # also the 109 M-parameter transformer (minutes)

It runs `lambdafit pack` itself (report.json holds the onnxruntime figures) and times torch eager
with the same timer on the same inputs.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from packager.config import Budget, Objective, PackConfig  # noqa: E402 (the CLI's own config: it derives the package from the budget)
from packager.errors import NoFitError  # noqa: E402
from packager.load import LoadOptions, TorchModel, load_model  # noqa: E402
from packager.measure import time_calls  # noqa: E402
from packager.pack import pack  # noqa: E402

MODELS = {
    "digits": {
        "model": f"{ROOT}/examples/digits/model.py:build",
        "eval": ROOT / "examples/digits/eval.npz",
        "calibration": ROOT / "examples/digits/train.npz",
        "prepare": ROOT / "examples/digits/model.py",
        "recipes": ("auto",),
        "budget": "image",
    },
    "ocr": {
        "model": None,
        "eval": ROOT / "examples/ocr/eval.npz",
        "calibration": ROOT / "examples/ocr/calibration.npz",
        "prepare": ROOT / "examples/ocr/data.py",
        "recipes": (
            "slim",
            "slim+fp16",
            "slim+int8-dynamic",
            "slim+int8-static",
            "slim+int8-dynamic-matmul",
            "slim+int4",
        ),
        "budget": "image",
    },
    "transformer": {
        "model": f"{ROOT}/examples/transformer/model.py:build",
        "eval": ROOT / "examples/transformer/eval.npz",
        "calibration": ROOT / "examples/transformer/calibration.npz",
        "prepare": ROOT / "examples/transformer/model.py",
        "recipes": ("slim+int8-dynamic-matmul", "slim+int4", "slim+int8-dynamic"),
        "budget": "zip",
    },
}


def torch_eager_ms(spec: str, eval_path: Path) -> float | None:
    loaded = load_model(spec, LoadOptions(work_dir=Path(tempfile.gettempdir())))
    if not isinstance(loaded, TorchModel):
        return None
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    with np.load(eval_path) as archive:
        arrays = {k: archive[k] for k in archive.files if k != "labels"}
    names = list(loaded.example_inputs)
    if len(names) == 1 and names[0] not in arrays:
        arrays = {names[0]: next(iter(arrays.values()))}
    rows = [torch.from_numpy(np.ascontiguousarray(arrays[n][:1])) for n in names]
    with torch.inference_mode():
        p50, _ = time_calls(lambda: loaded.module(*rows))
    return p50


def run(name: str, options: dict[str, object], out: Path) -> list[tuple[str, ...]]:
    if not Path(str(options["eval"])).is_file():
        runpy.run_path(str(options["prepare"]), run_name="__main__")
    model = options["model"]
    if model is None:
        from examples.ocr.data import recognizer

        model = str(recognizer())
    config = PackConfig(
        model=str(model),
        name=name,
        output_dir=out,
        eval_data=Path(str(options["eval"])),
        calibration_data=Path(str(options["calibration"])),
        budget=Budget.parse(str(options["budget"])),
        recipes=tuple(options["recipes"]),
        objective=Objective.SIZE,
        allow_slower=True,  # type: ignore[arg-type]
    )
    try:
        pack(config)
        data = json.loads((out / name / "report.json").read_text())
    except NoFitError as error:
        print(f"{name}: {error}")
        return []
    eager = torch_eager_ms(str(model), Path(str(options["eval"])))
    candidates = data["candidates"]
    base = candidates[0]["metrics"]
    rows = []
    for c in candidates:
        m = c["metrics"]
        if m is None:
            rows.append((name, c["recipe"], "failed", "", "", "", c["error"][:60]))
            continue
        rows.append(
            (
                name,
                c["recipe"],
                f"{base['size_bytes'] / m['size_bytes']:.2f}x",
                f"{100 * (base['quality'] - m['quality']):+.2f}",
                f"{m['p50_ms'] / base['p50_ms']:.2f}x",
                f"{m['p50_ms'] / eager:.2f}x" if eager else "n/a",
                c["verdict"] if c["recipe"] != data["chosen"] else "CHOSEN",
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transformer", action="store_true", help="include the 109 M-parameter transformer")
    args = parser.parse_args()
    names = ["digits", "ocr"] + (["transformer"] if args.transformer else [])
    header = ("model", "recipe", "size ratio", "drop pts", "p50 vs fp32 ORT", "p50 vs torch eager", "verdict")
    rows = [header]
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            rows += run(name, MODELS[name], Path(tmp))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
