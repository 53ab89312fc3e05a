"""`pack`: load -> export -> candidates -> measure -> choose -> bundle. One call, from Python or the CLI."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from handlers.manifest import Manifest, TensorSpec, sha256_file
from packager import recipes
from packager.bundle import FUNCTION_DIR, MODEL_FILE, BundleSpec, check_target, handler_code_bytes, write_bundle
from packager.config import NAMED_BUDGETS, PackageType, PackConfig
from packager.cost import CostEstimate, estimate
from packager.data import Dataset, load_dataset, synthetic_dataset
from packager.errors import LambdafitError, RecipeError
from packager.export import export_torch
from packager.fit import Candidate, FitResult, choose
from packager.load import OnnxModel, TorchModel, load_factory, load_model
from packager.measure import measure, open_session, predict
from packager.model_store import upload
from packager.preprocess import check_preprocessing, load_preprocessing
from packager.quality import Metric, is_classifier, pick_metric
from packager.recipes.auto import auto_recipes
from packager.report import to_json, to_markdown
from packager.signature import count_parameters, ctc_charset, read_metadata, read_signature
from packager.template import AppModel
from packager.wheels import glibc_warning, vendor_wheels

Progress = Callable[[str], None]
BASE_IMAGE_BYTES = 600_000_000
"""About what public.ecr.aws/lambda/python adds to an image (OS, Python, runtime client)."""


@dataclass(frozen=True)
class PackResult:
    bundle: Path
    fit: FitResult
    budget_bytes: int
    parts: dict[str, int]
    notes: list[str]
    export_max_abs_diff: float | None
    cost: CostEstimate


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class _Inputs:
    eval: Dataset
    calibration: Dataset
    train: Dataset | None


def _datasets(config: PackConfig, inputs: tuple[TensorSpec, ...], notes: list[str]) -> _Inputs:
    eval_data = load_dataset(config.eval_data, inputs) if config.eval_data else None
    calibration = load_dataset(config.calibration_data, inputs) if config.calibration_data else None
    train = load_dataset(config.train_data, inputs) if config.train_data else None
    if eval_data is None:
        eval_data = calibration or train or synthetic_dataset(inputs)
        notes.append(
            f"no --eval data: quality is fidelity to fp32 on {eval_data.source}"
            + (
                ", which says little about real inputs"
                if eval_data.labels is None and not config.calibration_data
                else ""
            )
        )
    if calibration is None:
        calibration = train or eval_data
        if config.eval_data and train is None:
            notes.append("no --calibration data: calibrated on the --eval inputs, so static-int8 quality is optimistic")
    return _Inputs(eval=eval_data, calibration=calibration, train=train)


def pack(config: PackConfig, progress: Progress = _quiet) -> PackResult:
    check_target(config.bundle_dir, config.force)
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="lambdafit-") as tmp:
        work = Path(tmp)
        progress(f"loading {config.model}")
        loaded = load_model(config.model)
        student = load_factory(*_split_factory(config.student)) if config.student else None
        baseline_path = work / "fp32.onnx"
        diff = None
        if isinstance(loaded, OnnxModel):
            shutil.copyfile(loaded.path, baseline_path)
        else:
            progress("exporting to ONNX (torch.onnx, dynamic batch)")
            diff = export_torch(loaded, baseline_path).max_abs_diff
            notes.append(f"torch -> ONNX parity: max abs difference {diff:.3g} at batch 3")
        inputs, outputs = read_signature(baseline_path)
        data = _datasets(config, inputs, notes)

        progress(f"vendoring runtime wheels for python{config.python} {config.arch.value}")
        preprocessing = load_preprocessing(config.preprocess)
        extras = preprocessing.extras + (("tracing",) if config.tracing else ())
        wheels = vendor_wheels(config.python, config.arch, config.wheel_dir, extras)
        if warning := glibc_warning(wheels, config.python):
            notes.append(warning)
        zipped = config.budget.name == "zip-upload"
        fixed = (wheels.compressed_bytes if zipped else wheels.installed_bytes) + handler_code_bytes()
        if config.package_type is PackageType.IMAGE:
            fixed += BASE_IMAGE_BYTES

        progress("running fp32 for reference outputs")
        try:
            reference = predict(open_session(baseline_path), data.eval)
        except Exception as exc:
            raise LambdafitError(f"onnxruntime cannot run the model: {str(exc).splitlines()[0]}") from exc
        metric = pick_metric(reference, data.eval.labels, ctc_charset(read_metadata(baseline_path)))
        ctx = recipes.RecipeContext(
            work_dir=work,
            calibration=data.calibration,
            calibration_method=config.calibration_method,
            torch_model=loaded if isinstance(loaded, TorchModel) else None,
            train=data.train,
            student=student,
        )
        plan = _plan(config, baseline_path, ctx)
        candidates = _candidates(plan, baseline_path, ctx, data.eval, reference, metric, fixed, zipped, progress)
        baseline = candidates[0].measurement
        if baseline is None:
            raise LambdafitError(f"the fp32 model itself cannot run in onnxruntime: {candidates[0].error}")
        result = choose(
            candidates,
            baseline,
            budget_bytes=config.budget.limit_bytes,
            max_drop=config.max_drop,
            objective=config.objective,
            allow_slower=config.allow_slower,
        )
        chosen = result.chosen
        assert chosen is not None and chosen.path is not None and chosen.measurement is not None
        parts = {f"runtime wheels: {name}": size for name, size in wheels.sizes().items()}
        parts["handler code"] = handler_code_bytes()
        parts["model"] = chosen.measurement.size_bytes
        if config.package_type is PackageType.IMAGE:
            parts["base image (estimate)"] = BASE_IMAGE_BYTES
        cost = estimate(chosen.measurement.peak_rss_mb, chosen.measurement.p50_ms, config.arch)
        if config.package_type is PackageType.ZIP and not zipped:
            zipped_estimate = wheels.compressed_bytes + chosen.measurement.compressed_bytes
            if zipped_estimate > NAMED_BUDGETS["zip-upload"]:
                notes.append(
                    f"the zip is about {zipped_estimate / 1e6:.0f} MB zipped, over the 50 MB direct-upload limit: "
                    "sam deploy uploads it through S3 (samconfig sets resolve_s3), which Lambda accepts up to 250 MB unzipped"
                )
        digest = sha256_file(chosen.path)
        manifest = Manifest(
            name=config.name,
            version=digest[:12],
            model_file=MODEL_FILE,
            sha256=digest,
            inputs=inputs,
            outputs=outputs,
            task="classification" if is_classifier(metric) else "generic",
            labels=tuple(config.labels or loaded.labels),
            recipe=chosen.recipe,
            metrics=chosen.measurement.to_dict() | {"baseline": baseline.to_dict()},
            runtime={"memory_mb": cost.memory_mb, "api": config.api.value, "tracing": config.tracing},
            preprocessing=preprocessing.config,
        )
        check_preprocessing(preprocessing, manifest)
        budget = {
            "name": config.budget.name,
            "limit_bytes": config.budget.limit_bytes,
            "package": config.package_type.value,
        }
        report: dict[str, Any] = to_json(result, budget=budget, parts=parts, notes=notes)
        report |= {"export_max_abs_diff": diff, "cost": cost.to_dict(), "eval_rows": len(data.eval)}
        progress(f"writing {config.bundle_dir}")
        model_uri = None
        if config.model_store:
            progress(f"uploading the model to {config.model_store}")
            model_uri = upload(config.model_store, chosen.path, manifest)
            notes.append(f"the model lives at {model_uri}; the function fetches it at init")
        app = AppModel(
            name=config.name,
            description=f"lambdafit endpoint for model {config.name} ({chosen.recipe})",
            code_dir=f"./{FUNCTION_DIR}",
            python=config.python,
            arch=config.arch,
            memory_mb=cost.memory_mb,
            package_type=config.package_type,
            api=config.api,
            auth=config.auth,
            model_uri=model_uri,
            model_bytes=chosen.measurement.size_bytes,
            reserved_concurrency=config.reserved_concurrency,
            provisioned_concurrency=config.provisioned_concurrency,
            tracing=config.tracing,
        )
        write_bundle(
            BundleSpec(
                app=app,
                manifest=manifest,
                model_path=chosen.path,
                wheels=wheels,
                sample_inputs=_sample(data.eval, inputs),
                report_json=report,
                report_md=to_markdown(config.name, result, config.budget.limit_bytes, parts, notes, cost),
                result=result,
                model_files=preprocessing.files,
            ),
            config.bundle_dir,
            config.force,
        )
    return PackResult(config.bundle_dir, result, config.budget.limit_bytes, parts, notes, diff, cost)


def _split_factory(spec: str) -> tuple[Path, str]:
    path, sep, function = spec.rpartition(":")
    if not (sep and path.endswith(".py") and function.isidentifier()):
        raise LambdafitError(f"--student {spec!r} must be a factory path/to/file.py:function")
    return Path(path), function


def _plan(config: PackConfig, baseline_path: Path, ctx: recipes.RecipeContext) -> list[recipes.Recipe]:
    if config.recipes == ("auto",):
        names = auto_recipes(
            baseline_path,
            torch_model=ctx.torch_model is not None,
            train_data=ctx.train is not None,
            student=ctx.student is not None,
        )
    else:
        names = [recipes.BASELINE, *config.recipes]
    return [recipes.Recipe.parse(name) for name in dict.fromkeys(names)]


def _candidates(
    plan: list[recipes.Recipe],
    baseline_path: Path,
    ctx: recipes.RecipeContext,
    eval_data: Dataset,
    reference: list[np.ndarray],
    metric: Metric,
    fixed_bytes: int,
    zipped: bool,
    progress: Progress,
) -> list[Candidate]:
    """Each recipe applied and measured; package size is zipped for the zip-upload budget, else unzipped."""
    candidates: list[Candidate] = []
    for number, recipe in enumerate(plan, start=1):
        progress(f"[{number}/{len(plan)}] {recipe.name}: transforming and measuring")
        try:
            path = recipe.apply(baseline_path, ctx)
            measured = measure(path, eval_data, reference, metric)
            parameters = count_parameters(path)
        except (RecipeError, LambdafitError) as exc:
            candidates.append(Candidate(recipe.name, None, None, 0, error=str(exc)))
            continue
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            candidates.append(Candidate(recipe.name, None, None, 0, error=first))
            continue
        candidates.append(
            Candidate(
                recipe.name,
                path,
                measured,
                fixed_bytes + (measured.compressed_bytes if zipped else measured.size_bytes),
                parameters=parameters,
            )
        )
    return candidates


def _sample(data: Dataset, specs: tuple[TensorSpec, ...]) -> object:
    rows = {spec.name: data.inputs[spec.name][:1].tolist() for spec in specs}
    return rows[specs[0].name] if len(specs) == 1 else rows
