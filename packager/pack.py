"""`pack`: prepare -> evaluate -> assemble, with typed hand-offs. One call, from Python or the CLI.

- prepare: load the model, export it to ONNX, read its signature, load the data, vendor the wheels;
- evaluate: run fp32 for reference outputs, apply and measure every recipe, choose;
- assemble: write the manifest, upload the model if asked, write the bundle and, last, its report.

The collaborators that reach outside the process (the wheel index, the measuring subprocess, S3)
are injected, so the orchestration is tested in milliseconds with fakes.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Protocol

import numpy as np

from handlers.contract import RuntimeSettings, S3Uri
from handlers.errors import plain, reason
from handlers.manifest import Manifest, RuntimeHints, Task, TensorSpec, sha256_file
from handlers.runtime import open_session
from packager import recipes
from packager.bundle import BundleSpec, check_target, fill, staged
from packager.config import Arch, PackageType, PackConfig, split_factory
from packager.cost import estimate
from packager.data import Dataset, load_dataset, synthetic_dataset
from packager.errors import LambdafitError
from packager.export import export_torch
from packager.fit import Candidate, Failed, FitResult, Measured, choose
from packager.load import LoadedModel, LoadOptions, OnnxModel, TorchModel, load_factory, load_model
from packager.measure import Measurement, measure, predict
from packager.preprocess import PreprocessingFiles, check_preprocessing, load_preprocessing
from packager.quality import Metric, is_classifier, pick_metric
from packager.recipes.auto import auto_recipes
from packager.report import Report
from packager.signature import count_parameters, ctc_charset, read_metadata, read_signature
from packager.size import ZIP_UPLOAD_LIMIT, PackageSize
from packager.template import AppModel
from packager.wheels import WheelSet, glibc_warning, vendor_wheels

Progress = Callable[[str], None]


class WheelSource(Protocol):
    def __call__(self, python: str, arch: Arch, extras: tuple[str, ...]) -> WheelSet: ...


class Measurer(Protocol):
    def __call__(self, path: Path, data: Dataset, reference: list[np.ndarray], metric: Metric) -> Measurement: ...


class Uploader(Protocol):
    def __call__(self, store: S3Uri, model: Path, manifest: Manifest) -> S3Uri: ...


@dataclass(frozen=True)
class Collaborators:
    wheels: WheelSource
    measure: Measurer
    upload: Uploader

    @classmethod
    def default(cls, config: PackConfig) -> Collaborators:
        from packager.model_store import upload

        return cls(wheels=partial(vendor_wheels, wheel_dir=config.wheel_dir), measure=measure, upload=upload)


@dataclass(frozen=True)
class Datasets:
    eval: Dataset
    calibration: Dataset
    train: Dataset | None


@dataclass(frozen=True)
class Prepared:
    config: PackConfig
    work: Path
    model: LoadedModel
    student: TorchModel | None
    baseline: Path
    """The fp32 ONNX model every candidate starts from."""
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    data: Datasets
    preprocessing: PreprocessingFiles
    size: PackageSize
    export_diff: float | None
    notes: tuple[str, ...]


@dataclass(frozen=True)
class Evaluated:
    fit: FitResult
    metric: Metric


@dataclass(frozen=True)
class PackResult:
    bundle: Path
    report: Report

    @property
    def fit(self) -> FitResult:
        return self.report.fit


def _quiet(_: str) -> None:
    return None


def pack(config: PackConfig, progress: Progress = _quiet, collaborators: Collaborators | None = None) -> PackResult:
    deps = collaborators or Collaborators.default(config)
    check_target(config.bundle_dir, config.force)
    with tempfile.TemporaryDirectory(prefix="lambdafit-") as tmp:
        prepared = prepare(config, Path(tmp), deps, progress)
        evaluated = evaluate(prepared, deps, progress)
        return assemble(prepared, evaluated, deps, progress)


def prepare(config: PackConfig, work: Path, deps: Collaborators, progress: Progress) -> Prepared:
    notes: list[str] = []
    progress(f"loading {config.model}")
    options = LoadOptions(work_dir=work, trust_pickle=config.trust_pickle)
    model = load_model(config.model, options)
    if isinstance(model, OnnxModel):
        notes.extend(model.notes)
    student = load_factory(*split_factory(config.student, "--student"), options) if config.student else None
    if student is not None and not isinstance(student, TorchModel):
        raise LambdafitError(f"--student {config.student} must return a torch module to distill into")
    baseline = work / "fp32.onnx"
    diff = None
    if isinstance(model, OnnxModel):
        shutil.copyfile(model.path, baseline)
    else:
        progress("exporting to ONNX (torch.onnx, dynamic batch)")
        diff = export_torch(model, baseline).max_abs_diff
    inputs, outputs = read_signature(baseline)
    data = _datasets(config, inputs, notes)
    preprocessing = load_preprocessing(config.preprocess)
    progress(f"vendoring runtime wheels for python{config.python} {config.arch.value}")
    extras = preprocessing.config.extras + (("tracing",) if config.tracing else ())
    wheels = deps.wheels(config.python, config.arch, extras)
    if warning := glibc_warning(wheels, config.python):
        notes.append(warning)
    return Prepared(
        config=config,
        work=work,
        model=model,
        student=student,
        baseline=baseline,
        inputs=inputs,
        outputs=outputs,
        data=data,
        preprocessing=preprocessing,
        size=PackageSize(config.package, config.limit, wheels),
        export_diff=diff,
        notes=tuple(notes),
    )


def _datasets(config: PackConfig, inputs: tuple[TensorSpec, ...], notes: list[str]) -> Datasets:
    eval_data = load_dataset(config.eval_data, inputs) if config.eval_data else None
    calibration = load_dataset(config.calibration_data, inputs) if config.calibration_data else None
    train = load_dataset(config.train_data, inputs) if config.train_data else None
    if eval_data is None:
        eval_data = calibration or train or synthetic_dataset(inputs)
        unlabelled = eval_data.labels is None and not config.calibration_data
        notes.append(
            f"no --eval data: quality is fidelity to fp32 on {eval_data.source}"
            + (", which says little about real inputs" if unlabelled else "")
        )
    if calibration is None:
        calibration = train or eval_data
        if config.eval_data and train is None:
            notes.append("no --calibration data: calibrated on the --eval inputs, so static-int8 quality is optimistic")
    return Datasets(eval=eval_data, calibration=calibration, train=train)


def evaluate(prepared: Prepared, deps: Collaborators, progress: Progress) -> Evaluated:
    config, data = prepared.config, prepared.data
    progress("running fp32 for reference outputs")
    try:
        reference = predict(open_session(prepared.baseline), data.eval)
    except Exception as exc:
        raise LambdafitError(f"onnxruntime cannot run the model: {reason(exc)}") from exc
    metric = pick_metric(reference, data.eval.labels, ctc_charset(read_metadata(prepared.baseline)))
    ctx = recipes.RecipeContext(
        work_dir=prepared.work,
        calibration=data.calibration,
        calibration_method=config.calibration_method,
        torch_model=prepared.model if isinstance(prepared.model, TorchModel) else None,
        train=data.train,
        student=prepared.student,
    )
    plan = _plan(config, prepared.baseline, ctx)
    candidates: list[Candidate] = []
    for number, recipe in enumerate(plan, start=1):
        progress(f"[{number}/{len(plan)}] {recipe.name}: transforming and measuring")
        candidates.append(_candidate(recipe, prepared, ctx, deps, reference, metric))
    baseline = candidates[0]
    if not isinstance(baseline, Measured):
        raise LambdafitError(f"the fp32 model itself cannot run in onnxruntime: {baseline.error}")
    fit = choose(
        candidates,
        baseline.measurement,
        budget_bytes=config.limit.limit_bytes,
        max_drop=config.max_drop,
        objective=config.objective,
        allow_slower=config.allow_slower,
    )
    return Evaluated(fit=fit, metric=metric)


def _plan(config: PackConfig, baseline: Path, ctx: recipes.RecipeContext) -> list[recipes.Recipe]:
    if config.recipes == ("auto",):
        names = auto_recipes(
            baseline,
            torch_model=ctx.torch_model is not None,
            train_data=ctx.train is not None,
            student=ctx.student is not None,
        )
    else:
        names = [recipes.BASELINE, *config.recipes]
    return [recipes.Recipe.parse(name) for name in dict.fromkeys(names)]


def _candidate(
    recipe: recipes.Recipe,
    prepared: Prepared,
    ctx: recipes.RecipeContext,
    deps: Collaborators,
    reference: list[np.ndarray],
    metric: Metric,
) -> Candidate:
    """One recipe applied and measured; its failure is a Failed candidate, never the end of the pack."""
    try:
        path = recipe.apply(prepared.baseline, ctx)
        measured = deps.measure(path, prepared.data.eval, reference, metric)
        parameters = count_parameters(path)
    except Exception as exc:
        return Failed(recipe.name, reason(exc), _detail(exc))
    package = prepared.size.of(measured.size_bytes, measured.compressed_bytes)
    return Measured(recipe.name, path, measured, package, parameters)


def _detail(error: BaseException) -> str:
    """The whole story of a failure, for report.json: every message down the chain of causes."""
    lines = [str(error) if isinstance(error, LambdafitError) else f"{type(error).__name__}: {error}"]
    cause = error.__cause__
    while cause is not None:
        lines.append(f"caused by {type(cause).__name__}: {cause}")
        cause = cause.__cause__
    return plain("\n".join(lines))


def assemble(prepared: Prepared, evaluated: Evaluated, deps: Collaborators, progress: Progress) -> PackResult:
    config, fit = prepared.config, evaluated.fit
    chosen = fit.chosen
    notes = list(prepared.notes)
    if prepared.export_diff is not None:
        notes.append(f"torch -> ONNX parity: max abs difference {prepared.export_diff:.3g} at batch 3")
    cost = estimate(chosen.measurement.peak_rss_mb, chosen.measurement.p50_ms, config.arch)
    if config.package is PackageType.ZIP and not config.limit.zipped:
        zipped = prepared.size.zipped_estimate(chosen.measurement.compressed_bytes)
        if zipped > ZIP_UPLOAD_LIMIT:
            notes.append(
                f"the zip is about {zipped / 1e6:.0f} MB zipped, over the 50 MB direct-upload limit: "
                "sam deploy uploads it through S3 (samconfig sets resolve_s3), which Lambda accepts up to 250 MB unzipped"
            )
    manifest = _manifest(prepared, evaluated, cost.memory_mb)
    check_preprocessing(prepared.preprocessing, manifest)
    settings = RuntimeSettings(tracing=config.tracing, service=config.name)
    if config.model_store:
        store = S3Uri.parse(config.model_store, prefix_only=True)
        progress(f"uploading the model to {store}")
        uri = deps.upload(store, chosen.path, manifest)
        settings = replace(settings, model_uri=uri)
        notes.append(f"the model lives at {uri}; the function fetches it at init")
    app = AppModel(
        name=config.name,
        description=f"lambdafit endpoint for model {config.name} ({chosen.recipe})",
        code_dir="./function",
        python=config.python,
        arch=config.arch,
        memory_mb=cost.memory_mb,
        package_type=config.package,
        api=config.api,
        auth=config.auth,
        settings=settings,
        model_bytes=chosen.measurement.size_bytes,
        reserved_concurrency=config.reserved_concurrency,
        provisioned_concurrency=config.provisioned_concurrency,
    )
    progress(f"writing {config.bundle_dir}")
    spec = BundleSpec(
        app=app,
        manifest=manifest,
        model_path=chosen.path,
        wheels=prepared.size.wheels,
        sample_inputs=_sample(prepared.data.eval, prepared.inputs),
        model_files=prepared.preprocessing.files,
    )
    with staged(config.bundle_dir, config.force) as root:
        bytecode = fill(spec, root)
        report = Report(
            name=config.name,
            fit=fit,
            budget=config.limit,
            package=config.package,
            parts=prepared.size.parts(chosen.measurement.size_bytes, bytecode),
            notes=tuple(notes),
            cost=cost,
            eval_rows=len(prepared.data.eval),
            export_max_abs_diff=prepared.export_diff,
        )
        report.write(root)
    return PackResult(config.bundle_dir, report)


def _manifest(prepared: Prepared, evaluated: Evaluated, memory_mb: int) -> Manifest:
    chosen, baseline = evaluated.fit.chosen, evaluated.fit.baseline
    digest = sha256_file(chosen.path)
    return Manifest(
        name=prepared.config.name,
        version=digest[:12],
        sha256=digest,
        inputs=prepared.inputs,
        outputs=prepared.outputs,
        task=Task.CLASSIFICATION if is_classifier(evaluated.metric) else Task.GENERIC,
        labels=prepared.config.labels or prepared.model.labels,
        recipe=chosen.recipe,
        metrics=chosen.measurement.to_manifest(baseline),
        runtime=RuntimeHints(memory_mb=memory_mb),
        preprocessing=prepared.preprocessing.config,
    )


def _sample(data: Dataset, specs: tuple[TensorSpec, ...]) -> object:
    rows = {spec.name: data.inputs[spec.name][:1].tolist() for spec in specs}
    return rows[specs[0].name] if len(specs) == 1 else rows
