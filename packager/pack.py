"""`pack`: load -> export -> candidates -> measure -> choose -> bundle. One call, from Python or the CLI."""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from handlers.manifest import Manifest, TensorSpec, sha256_file
from packager import recipes
from packager.bundle import MODEL_FILE, BundleSpec, check_target, handler_code_bytes, write_bundle
from packager.config import PackConfig
from packager.data import Dataset, load_dataset, synthetic_dataset
from packager.errors import LambdafitError
from packager.export import export_torch
from packager.fit import Candidate, FitResult, choose
from packager.load import OnnxModel, load_model
from packager.measure import is_classifier, measure, open_session, predict
from packager.report import to_json, to_markdown
from packager.signature import read_signature
from packager.wheels import glibc_warning, vendor_wheels

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PackResult:
    bundle: Path
    fit: FitResult
    budget_bytes: int
    parts: dict[str, int]
    notes: list[str]
    export_max_abs_diff: float | None


def _quiet(_: str) -> None:
    return None


def pack(config: PackConfig, progress: Progress = _quiet) -> PackResult:
    check_target(config.bundle_dir, config.force)
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="lambdafit-") as tmp:
        work = Path(tmp)
        progress(f"loading {config.model}")
        loaded = load_model(config.model)
        baseline_path = work / "fp32.onnx"
        diff = None
        if isinstance(loaded, OnnxModel):
            shutil.copyfile(loaded.path, baseline_path)
        else:
            progress("exporting to ONNX (torch.onnx, dynamic batch)")
            diff = export_torch(loaded, baseline_path).max_abs_diff
            notes.append(f"torch -> ONNX parity: max abs difference {diff:.3g} at batch 3")
        inputs, outputs = read_signature(baseline_path)

        eval_data = load_dataset(config.eval_data, inputs) if config.eval_data else None
        calibration = load_dataset(config.calibration_data, inputs) if config.calibration_data else None
        if eval_data is None:
            eval_data = calibration or synthetic_dataset(inputs)
            notes.append(
                f"no --eval data: quality is fidelity to fp32 on {eval_data.source}"
                + (", which says little about accuracy on real inputs" if calibration is None else "")
            )
        if calibration is None:
            calibration = eval_data
            if config.eval_data:
                notes.append(
                    "no --calibration data: calibrated on the --eval inputs, so static-int8 accuracy is optimistic"
                )

        progress(f"vendoring runtime wheels for python{config.python} {config.arch.value}")
        wheels = vendor_wheels(config.python, config.arch, config.wheel_dir)
        if warning := glibc_warning(wheels, config.python):
            notes.append(warning)
        fixed = wheels.installed_bytes + handler_code_bytes()

        candidates, reference, classifier = _candidates(
            config, baseline_path, eval_data, calibration, fixed, work, progress
        )
        baseline = candidates[0].measurement
        if baseline is None:
            raise LambdafitError(f"the fp32 model itself cannot run in onnxruntime: {candidates[0].error}")
        result = choose(
            candidates,
            baseline,
            budget_bytes=config.budget.limit_bytes,
            max_drop=config.max_drop,
            objective=config.objective,
        )
        chosen = result.chosen
        assert chosen.path is not None and chosen.measurement is not None
        parts = {
            "runtime wheels": wheels.installed_bytes,
            "handler code": handler_code_bytes(),
            "model": chosen.measurement.size_bytes,
        }
        labels = config.labels or loaded.labels
        manifest = Manifest(
            name=config.name,
            version=sha256_file(chosen.path)[:12],
            model_file=MODEL_FILE,
            sha256=sha256_file(chosen.path),
            inputs=inputs,
            outputs=outputs,
            task="classification" if classifier else "generic",
            labels=tuple(labels),
            recipe=chosen.recipe,
            metrics=chosen.measurement.to_dict() | {"baseline": baseline.to_dict()},
            runtime={"memory_mb": memory_recommendation(chosen.measurement.size_bytes)},
        )
        budget = {"name": config.budget.name, "limit_bytes": config.budget.limit_bytes}
        progress(f"writing {config.bundle_dir}")
        write_bundle(
            BundleSpec(
                name=config.name,
                manifest=manifest,
                model_path=chosen.path,
                wheels=wheels,
                python=config.python,
                arch=config.arch,
                memory_mb=manifest.runtime["memory_mb"],
                sample_inputs=_sample(eval_data, inputs),
                report_json=to_json(result, budget=budget, parts=parts, notes=notes)
                | {"export_max_abs_diff": diff, "reference_rows": len(reference[0])},
                report_md=to_markdown(config.name, result, config.budget.limit_bytes, parts, notes),
            ),
            config.bundle_dir,
            config.force,
        )
    return PackResult(config.bundle_dir, result, config.budget.limit_bytes, parts, notes, diff)


def _candidates(
    config: PackConfig,
    baseline_path: Path,
    eval_data: Dataset,
    calibration: Dataset,
    fixed_bytes: int,
    work: Path,
    progress: Progress,
) -> tuple[list[Candidate], list[np.ndarray], bool]:
    names = list(recipes.AUTO) if config.recipes == ("auto",) else [recipes.BASELINE, *config.recipes]
    plan = [recipes.Recipe.parse(name) for name in dict.fromkeys(names)]
    ctx = recipes.RecipeContext(work_dir=work, calibration=calibration)
    progress("running fp32 for reference outputs")
    try:
        reference = predict(open_session(baseline_path)[0], eval_data)
    except Exception as exc:
        raise LambdafitError(f"onnxruntime cannot run the model: {str(exc).splitlines()[0]}") from exc
    classifier = bool(config.labels) or is_classifier(reference, eval_data.labels)
    candidates: list[Candidate] = []
    for recipe in plan:
        progress(f"trying {recipe.name}")
        try:
            path = recipe.apply(baseline_path, ctx)
            measured, _ = measure(path, eval_data, reference, classifier)
        except LambdafitError as exc:
            candidates.append(Candidate(recipe.name, None, None, 0, error=str(exc)))
            continue
        except Exception as exc:
            candidates.append(Candidate(recipe.name, None, None, 0, error=str(exc).splitlines()[0]))
            continue
        candidates.append(Candidate(recipe.name, path, measured, fixed_bytes + measured.size_bytes))
    return candidates, reference, classifier


def memory_recommendation(model_bytes: int) -> int:
    """An estimate, not a measurement: runtime (~200 MB) plus a few copies of the weights, in 64 MB steps."""
    estimate = 256 + 4 * model_bytes / 2**20
    return int(min(10_240, max(512, math.ceil(estimate / 64) * 64)))


def _sample(data: Dataset, specs: tuple[TensorSpec, ...]) -> object:
    rows = {spec.name: data.inputs[spec.name][:1].tolist() for spec in specs}
    return rows[specs[0].name] if len(specs) == 1 else rows
