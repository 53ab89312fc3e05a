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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from handlers.contract import RuntimeSettings, S3Uri
from handlers.errors import plain, reason
from handlers.manifest import DimBounds, Manifest, RequestLimits, RuntimeHints, Task, TensorSpec, sha256_file
from handlers.runtime import open_session, visible_cores
from packager import interrupt, memory, recipes, snapstart
from packager.batch import map_batch_rows
from packager.bundle import BundleSpec, check_target, fill, predict_body, staged
from packager.classify import (
    class_count,
    class_labels,
    find_classifier,
    graph_labels,
    label_indices,
    metadata_labels,
)
from packager.config import Arch, MemoryObjective, Mode, PackageType, PackConfig, split_factory
from packager.cost import MB_PER_VCPU, estimate
from packager.data import Dataset, make_dataset, read_arrays, shapes, synthetic_dataset, with_defaults
from packager.errors import DataError, LambdafitError, ModelLoadError, NoFitError
from packager.export import export_torch
from packager.fit import Candidate, Failed, FitResult, Measured, choose
from packager.generate.checkpoint import is_generation
from packager.host import Host
from packager.limits import RowCosts, derive, per_row_elements
from packager.load import LoadedModel, LoadOptions, OnnxModel, TorchModel, load_factory, load_model
from packager.measure import (
    Measurement,
    Profile,
    candidate_runtime,
    cold_start,
    compressed_size,
    measure,
    predict,
)
from packager.postprocess import choose_outputs
from packager.preprocess import PreprocessingFiles, check_preprocessing, load_preprocessing
from packager.probe import peak_rss_mb
from packager.progress import RecipeStep
from packager.quality import Metric, Outputs, pick_metric
from packager.quality_job import QualityCheck
from packager.quota import QuotaUnavailableError
from packager.recipes.auto import auto_recipes
from packager.report import PackResources, Report, ShippedQuality
from packager.samples import sample_request
from packager.signature import (
    Probe,
    assign_input_axes,
    assign_output_axes,
    count_parameters,
    ctc_charset,
    index_ranges,
    parse_batch_axes,
    parse_dims,
    read_metadata,
    read_signature,
    shapes_of,
)
from packager.size import ZIP_UPLOAD_LIMIT, PackageSize, bytecode_note
from packager.template import BATCH_TIMEOUT_S, LAMBDA_TIMEOUT_S, AppModel
from packager.timing import Latency, Timings, time_candidates
from packager.wheels import WheelSet, glibc_warning, vendor_wheels

Progress = Callable[[str], None]


class WheelSource(Protocol):
    def __call__(self, python: str, arch: Arch, extras: tuple[str, ...]) -> WheelSet: ...


class Measurer(Protocol):
    def __call__(self, path: Path, check: QualityCheck, threads: int | None = None) -> Profile: ...


class Timer(Protocol):
    def __call__(self, paths: Sequence[Path], data: Dataset, manifest: Manifest) -> Timings: ...


class Uploader(Protocol):
    def __call__(self, store: S3Uri, model: Path, manifest: Manifest) -> S3Uri: ...


class Prober(Protocol):
    def __call__(self, path: Path, data: Dataset, rows: int) -> dict[str, float]: ...


class MemorySweeper(Protocol):
    def __call__(
        self, model_dir: Path, sizes: tuple[int, ...], objective: MemoryObjective, arch: Arch, floor: int
    ) -> memory.MemoryChoice: ...


@dataclass(frozen=True)
class Collaborators:
    wheels: WheelSource
    measure: Measurer
    """Size, quality, cold start and peak memory of one candidate, in a fresh process."""
    time: Timer
    """Latency of every candidate, interleaved in rounds in one process."""
    upload: Uploader
    probe: Prober
    """Runs the model in a fresh process with some rows: its peak memory (for the request limits)."""
    sweep: MemorySweeper | None = None
    """Measures the handler under each memory size's CPU share (packager.memory); None keeps the RSS rule."""

    @classmethod
    def default(cls, config: PackConfig) -> Collaborators:
        from packager.model_store import upload

        return cls(
            wheels=partial(vendor_wheels, wheel_dir=config.wheel_dir),
            measure=measure,
            time=time_candidates,
            upload=upload,
            probe=cold_start,
            sweep=memory.sweep,
        )


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
    dims: dict[str, DimBounds]
    data: Datasets
    preprocessing: PreprocessingFiles
    size: PackageSize
    export_diff: float | None
    notes: tuple[str, ...]
    started: float
    """time.perf_counter() when the pack began, for the report's wall time."""


@dataclass(frozen=True)
class Evaluated:
    fit: FitResult
    metric: Metric
    manifest: Manifest
    """What requests and answers look like (signature, classifier, labels), before a model is chosen."""
    host: Host
    workers_peak_rss_mb: float
    """The largest measuring or timing process's own peak memory."""
    notes: tuple[str, ...] = ()
    check: QualityCheck | None = None
    """What quality was measured with, to measure the chosen model again at the threads it ships with."""


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
    if is_generation(config):
        from packager.generate.pipeline import pack_generation

        return pack_generation(config, progress)
    deps = collaborators or Collaborators.default(config)
    check_target(config.bundle_dir, config.force)
    with tempfile.TemporaryDirectory(prefix="lambdafit-") as tmp:
        prepared = prepare(config, Path(tmp), deps, progress)
        evaluated = evaluate(prepared, deps, progress)
        return assemble(prepared, evaluated, deps, progress)


def prepare(config: PackConfig, work: Path, deps: Collaborators, progress: Progress) -> Prepared:
    started = time.perf_counter()
    notes: list[str] = []
    progress(f"loading {config.model}")
    options = LoadOptions(work_dir=work, trust_pickle=config.trust_pickle, task=config.task)
    model = load_model(config.model, options)
    student = load_factory(*split_factory(config.student, "--student"), options) if config.student else None
    if student is not None and not isinstance(student, TorchModel):
        raise LambdafitError(f"--student {config.student} must return a torch module to distill into")
    baseline = work / "fp32.onnx"
    diff = None
    if isinstance(model, OnnxModel):
        shutil.copyfile(model.path, baseline)
        notes += model.notes
    else:
        progress("exporting to ONNX (torch.onnx)")
        exported = export_torch(model, baseline)
        diff = exported.max_abs_diff
        notes += model.notes + exported.notes
    inputs, outputs = read_signature(baseline)
    inputs = index_ranges(baseline, inputs)
    if isinstance(model, TorchModel):
        inputs = _example_defaults(inputs, model)
    inputs, data = _inputs_and_data(config, inputs, notes)
    progress("running fp32 at two batch sizes to find the outputs' batch axes")
    inputs, outputs = _probe_outputs(baseline, inputs, outputs, data.eval, notes)
    preprocessing = load_preprocessing(config.preprocess)
    if config.preprocess is None and model.preprocessing is not None:
        preprocessing = model.preprocessing
    progress(f"vendoring runtime wheels for python{config.python} {config.arch.value}")
    extras = preprocessing.config.extras + (("tracing",) if config.tracing else ())
    wheels = deps.wheels(config.python, config.arch, extras)
    if warning := glibc_warning(wheels, config.python):
        notes.append(warning)
    size = PackageSize(config.package, config.limit, wheels, config.python, config.arch)
    size.check_runtime()
    return Prepared(
        config=config,
        work=work,
        model=model,
        student=student,
        baseline=baseline,
        inputs=inputs,
        outputs=outputs,
        dims=_model_dims(model, inputs) | parse_dims(config.dims, inputs),
        data=data,
        preprocessing=preprocessing,
        size=size,
        export_diff=diff,
        notes=tuple(notes),
        started=started,
    )


def _example_defaults(inputs: tuple[TensorSpec, ...], model: TorchModel) -> tuple[TensorSpec, ...]:
    """A torch input given as a 0-d tensor (a temperature, a threshold) keeps the example's value as
    its default: requests may leave it out."""
    return tuple(
        replace(spec, default=model.example_inputs[spec.name].item())
        if not spec.shape and spec.name in model.example_inputs
        else spec
        for spec in inputs
    )


def _model_dims(model: LoadedModel, inputs: tuple[TensorSpec, ...]) -> dict[str, DimBounds]:
    """The model's own bounds on the symbolic dimensions its graph kept (the exporter may have fixed some)."""
    symbolic = {dim for spec in inputs for dim in spec.shape if isinstance(dim, str)}
    return {name: bounds for name, bounds in model.dims.items() if name in symbolic}


def _inputs_and_data(
    config: PackConfig, inputs: tuple[TensorSpec, ...], notes: list[str]
) -> tuple[tuple[TensorSpec, ...], Datasets]:
    """The inputs' batch axes (named, given, or read off the data) and the data loaded along them."""
    files = {role: path for role, path in (("eval", config.eval_data), ("calibration", config.calibration_data),
                                           ("train", config.train_data)) if path is not None}  # fmt: skip
    raw = {role: read_arrays(path) for role, path in files.items()}
    first = next(iter(raw.values()), None)
    inputs = assign_input_axes(inputs, parse_batch_axes(config.batch_axes), shapes(first[0], inputs) if first else None)
    loaded = {role: make_dataset(arrays, labels, inputs, str(files[role])) for role, (arrays, labels) in raw.items()}
    eval_data, calibration, train = loaded.get("eval"), loaded.get("calibration"), loaded.get("train")
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
    inputs = with_defaults(inputs, eval_data)
    batches = {spec.name: spec.fixed_batch for spec in inputs if spec.batch_axis is not None}
    if len(set(batches.values())) > 1:
        raise ModelLoadError(
            f"the inputs' batch axes disagree ({', '.join(s.describe() for s in inputs)}): name each input's "
            "batch axis with --batch-axis NAME=AXIS, or NAME=none for an input given once per request"
        )
    return inputs, Datasets(eval=eval_data, calibration=calibration, train=train)


def _probe_outputs(
    baseline: Path, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...], data: Dataset, notes: list[str]
) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Run fp32 with one row and with three: the outputs' batch axes and real shapes. A graph that
    declares a dynamic batch but only runs one row is then served one row per call."""
    try:
        session = open_session(baseline)
    except Exception as exc:
        raise LambdafitError(f"onnxruntime cannot load the model: {reason(exc)}") from exc
    names = [spec.name for spec in outputs]
    fixed = next((spec.fixed_batch for spec in inputs if spec.batch_axis is not None), None)
    batched = any(spec.batch_axis is not None for spec in inputs)

    def run(rows: int) -> dict[str, object]:
        return dict(zip(names, session.run(names, data.feed(rows)), strict=True))

    try:
        small = run(fixed or 1)
    except Exception as exc:
        raise LambdafitError(
            f"onnxruntime cannot run the model on {data.source}: {reason(exc).rstrip('.')}. Give --eval data shaped like real "
            "requests, and --batch-axis NAME=AXIS where a batch is not on the first axis"
        ) from exc
    large_rows = None if fixed or not batched else 3
    large = None
    if large_rows:
        try:
            large = run(large_rows)
        except Exception as exc:
            notes.append(f"the model fails with {large_rows} rows ({reason(exc)}): it is served one row per call")
            inputs = tuple(_fix_batch(spec) for spec in inputs)
            fixed, large_rows = 1, None
    found = Probe(shapes_of(small), shapes_of(large) if large else {}, fixed or 1, large_rows)
    return inputs, assign_output_axes(outputs, found, fixed)


def _fix_batch(spec: TensorSpec) -> TensorSpec:
    if spec.batch_axis is None:
        return spec
    shape = list(spec.shape)
    shape[spec.batch_axis] = 1
    return replace(spec, shape=tuple(shape))


def evaluate(prepared: Prepared, deps: Collaborators, progress: Progress) -> Evaluated:
    config, data = prepared.config, prepared.data
    progress("running fp32 for reference outputs")
    provisional = Manifest(
        name=config.name,
        version="candidate",
        sha256="",
        inputs=prepared.inputs,
        outputs=prepared.outputs,
        dims=prepared.dims,
    )
    try:
        reference = predict(candidate_runtime(prepared.baseline, provisional), data.eval)
    except Exception as exc:
        raise LambdafitError(f"onnxruntime cannot run the model on {data.eval.source}: {reason(exc)}") from exc
    manifest, metric = _interface(prepared, provisional, reference)
    answers = choose_outputs(config.outputs, config.top_k, manifest, reference)
    manifest = replace(manifest, postprocessing=answers.config)
    ctx = recipes.RecipeContext(
        work_dir=prepared.work,
        calibration=data.calibration,
        calibration_method=config.calibration_method,
        torch_model=prepared.model if isinstance(prepared.model, TorchModel) else None,
        train=data.train,
        student=prepared.student,
        calibration_rows=manifest.fixed_batch or 8,
    )
    plan = _plan(config, prepared.baseline, ctx)
    check = QualityCheck(data.eval, reference, metric, manifest)
    candidates, workers = _measure(plan, prepared, ctx, deps, check, progress)
    baseline = candidates[0]
    if not isinstance(baseline, Measured):
        raise LambdafitError(f"the fp32 model itself cannot run in onnxruntime: {baseline.error}")
    try:
        fit = choose(
            candidates,
            baseline.measurement,
            budget_bytes=config.limit.limit_bytes,
            max_drop=config.max_drop,
            objective=config.objective,
            allow_slower=config.allow_slower,
        )
    except NoFitError as error:
        measured = [c for c in candidates if isinstance(c, Measured)]
        if all(c.package_bytes > config.limit.limit_bytes for c in measured):
            smallest = min(measured, key=lambda c: c.package_bytes)
            why = prepared.size.over_budget(smallest.measurement.size_bytes, smallest.package_bytes)
            raise NoFitError(why, error.rejection) from None
        raise
    host = Host.read()
    notes = answers.notes + host.carry_over(config.arch)
    if config.recipes == ("auto",) and len(plan) <= 2:
        notes += ("no quantized candidate: the graph has no Conv, MatMul or Gemm weights (tree ensembles and "
                  "ai.onnx.ml models are served as they are, slimmed)",)  # fmt: skip
    return Evaluated(
        fit=fit, metric=metric, manifest=manifest, host=host, workers_peak_rss_mb=workers, notes=notes, check=check
    )


def _interface(prepared: Prepared, provisional: Manifest, reference: Outputs) -> tuple[Manifest, Metric]:
    """Whether the model classifies (and its class names), and the quality metric that fits."""
    config, labels = prepared.config, prepared.data.eval.labels
    metadata = read_metadata(prepared.baseline)
    known = len(config.labels or prepared.model.labels) or None
    classifier = find_classifier(prepared.outputs, reference, config.classifier_output, known)
    names: tuple[str, ...] = ()
    count = None
    if classifier is not None:
        spec = next(s for s in prepared.outputs if s.name == classifier)
        count = class_count(spec, reference[classifier]) or 0
        names = class_labels(
            count,
            given=config.labels,
            model=prepared.model.labels,
            metadata=metadata_labels(metadata, count),
            output=classifier,
            graph=graph_labels(prepared.baseline, count),
        )
    elif config.labels:
        raise LambdafitError(
            f"--labels names classes, but no output looks like class scores ({', '.join(s.describe() for s in prepared.outputs)}): "
            "name the output with --classifier-output"
        )
    charset = ctc_charset(metadata)
    floats = labels is not None and labels.dtype.kind == "f"
    if floats and (classifier is not None or charset is not None) and config.metric is None:
        raise DataError(
            f"{prepared.data.eval.source}: 'labels' holds floats, which are regression targets, but the model "
            f"{'classifies' if classifier is not None else 'reads text'}: give class indices or names (texts), "
            "or --metric file.py:function"
        )
    if (
        labels is not None
        and not floats
        and classifier is None
        and charset is None
        and config.eval_data is not None
        and config.metric is None
    ):
        raise DataError(
            f"{prepared.data.eval.source} has 'labels', but no output looks like class scores "
            f"({', '.join(s.describe() for s in prepared.outputs)}): name the one that holds them with "
            "--classifier-output, or leave the labels out (quality is then fidelity to fp32)"
        )
    metric = pick_metric(
        reference,
        prepared.outputs,
        classifier=classifier,
        label_indices=label_indices(labels, names, prepared.data.eval.source, count)
        if classifier is not None and labels is not None and not floats
        else None,
        label_names=names,
        text_labels=labels if labels is not None and labels.dtype.kind in "US" else None,
        charset=charset,
        float_labels=labels if floats else None,
        user=config.metric,
    )
    task = Task.CLASSIFICATION if classifier is not None else Task.GENERIC
    return replace(provisional, classifier_output=classifier, labels=names, task=task), metric


def _plan(config: PackConfig, baseline: Path, ctx: recipes.RecipeContext) -> list[recipes.Recipe]:
    if config.recipes == ("auto",):
        names = auto_recipes(
            baseline,
            torch_model=ctx.torch_model is not None,
            train_data=ctx.train is not None,
            student=ctx.student is not None,
            arch=config.arch,
        )
    else:
        names = [recipes.BASELINE, *config.recipes]
    return [recipes.Recipe.parse(name) for name in dict.fromkeys(names)]


def _measure(
    plan: list[recipes.Recipe],
    prepared: Prepared,
    ctx: recipes.RecipeContext,
    deps: Collaborators,
    check: QualityCheck,
    progress: Progress,
) -> tuple[list[Candidate], float]:
    """Every recipe applied and profiled in its own process, then every model that runs timed together,
    interleaved; with the largest of those processes' peak memory."""
    profiled: list[_Profiled | Failed] = []
    for number, recipe in enumerate(plan, start=1):
        progress(RecipeStep(number, len(plan), recipe.name))
        profiled.append(_profile(recipe, prepared, ctx, deps, check))
    runnable = [p for p in profiled if isinstance(p, _Profiled)]
    if not runnable or runnable[0] is not profiled[0]:
        return [p if isinstance(p, Failed) else Failed(p.recipe, "not timed: fp32 failed") for p in profiled], 0.0
    progress(f"timing {len(runnable)} candidates interleaved in one process")
    timings = deps.time([p.path for p in runnable], check.data, check.manifest)
    latencies = dict(zip((p.recipe for p in runnable), timings.latencies, strict=True))
    candidates: list[Candidate] = [
        p if isinstance(p, Failed) else _measured(p, latencies[p.recipe], prepared) for p in profiled
    ]
    return candidates, max([timings.peak_rss_mb, *(p.profile.process_peak_rss_mb for p in runnable)])


@dataclass(frozen=True)
class _Profiled:
    """A recipe's model with everything but its latency, which all candidates are timed for together."""

    recipe: str
    path: Path
    profile: Profile
    parameters: int


def _profile(
    recipe: recipes.Recipe, prepared: Prepared, ctx: recipes.RecipeContext, deps: Collaborators, check: QualityCheck
) -> _Profiled | Failed:
    """One recipe applied and measured; its failure is a Failed candidate, never the end of the pack."""
    try:
        path = recipe.apply(prepared.baseline, ctx)
        profile = deps.measure(path, check)
        parameters = count_parameters(path)
    except Exception as exc:
        interrupt.check()  # a signal is no failed recipe
        return Failed(recipe.name, reason(exc), _detail(exc))
    return _Profiled(recipe.name, path, profile, parameters)


def _measured(profiled: _Profiled, latency: Latency, prepared: Prepared) -> Measured:
    """Zipped bytes only when the budget counts them: compressing a 400 MB model takes seconds."""
    compressed = compressed_size(profiled.path) if prepared.size.budget.zipped else None
    measurement = Measurement.of(profiled.profile, latency, compressed)
    package = prepared.size.of(measurement.size_bytes, compressed)
    return Measured(profiled.recipe, profiled.path, measurement, package, profiled.parameters)


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
    notes = list(prepared.notes + evaluated.notes)
    if prepared.export_diff is not None:
        notes.append(f"torch -> ONNX parity: max abs difference {prepared.export_diff:.3g} at batch 3")
    memory_choice = _memory(prepared, evaluated, deps, progress, notes)
    if memory_choice is not None:
        cost = memory_choice.estimate()
    else:
        cost = estimate(chosen.measurement.peak_rss_mb, chosen.measurement.p50_ms, config.arch)
    if config.package is PackageType.ZIP and (note := bytecode_note(config.python)):
        notes.append(note)
    if config.package is PackageType.ZIP and not config.limit.zipped:
        zipped = prepared.size.zipped_estimate(compressed_size(chosen.path))
        if zipped > ZIP_UPLOAD_LIMIT:
            notes.append(
                f"the zip is about {zipped / 1e6:.0f} MB zipped, over the 50 MB direct-upload limit: "
                "sam deploy uploads it through S3 (samconfig sets resolve_s3), which Lambda accepts up to 250 MB unzipped"
            )
    threads = memory_choice.chosen.threads if memory_choice else memory.intra_op_threads(cost.memory_mb)
    shipped = _quality_as_shipped(prepared, evaluated, deps, threads, progress)
    if shipped is not None and (note := shipped.note()):
        notes.append(note)
    manifest = replace(_manifest(prepared, evaluated, cost.memory_mb), runtime=RuntimeHints(cost.memory_mb, threads))
    manifest = replace(manifest, limits=_limits(manifest, chosen, prepared.data.eval, deps, cost.memory_mb))
    check_preprocessing(prepared.preprocessing, manifest)
    settings = RuntimeSettings(tracing=config.tracing, service=config.name, metrics=True)
    if config.model_store:
        store = S3Uri.parse(config.model_store, prefix_only=True)
        progress(f"uploading the model to {store}")
        uri = deps.upload(store, chosen.path, manifest)
        settings = replace(settings, model_uri=uri)
        notes.append(f"the model lives at {uri}; the function fetches it at init")
    app = app_model(
        config,
        f"lambdafit endpoint for model {config.name} ({chosen.recipe})",
        memory_mb=cost.memory_mb,
        settings=settings,
        model_bytes=chosen.measurement.size_bytes,
    )
    snap = snapstart.decide(
        config.snapstart,
        python=config.python,
        provisioned_concurrency=config.provisioned_concurrency,
        ephemeral_mb=app.tmp_mb,
        cold_load_ms=chosen.measurement.init_ms,
        memory_mb=app.memory_mb,
        cpu_share=app.memory_mb / MB_PER_VCPU,
    )
    app = replace(app, snapstart=snap.enabled)
    if config.mode is Mode.BATCH:
        per_row_ms = chosen.measurement.p50_ms / min(1.0, app.memory_mb / MB_PER_VCPU)
        app = replace(app, batch=True, batch_rows=map_batch_rows(manifest, per_row_ms, BATCH_TIMEOUT_S))
    progress(f"writing {config.bundle_dir}")
    sample_inputs = _sample(prepared.data.eval, prepared.inputs)
    spec = BundleSpec(
        app=app,
        manifest=manifest,
        model_path=chosen.path,
        wheels=prepared.size.wheels,
        sample_inputs=sample_inputs,
        model_files=prepared.preprocessing.files,
        sample=sample_request(manifest, prepared.data.eval, sample_inputs, prepared.preprocessing.files),
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
            host=evaluated.host,
            resources=PackResources(
                seconds=time.perf_counter() - prepared.started,
                peak_rss_mb=peak_rss_mb(),
                workers_peak_rss_mb=evaluated.workers_peak_rss_mb,
            ),
            snapstart=snap,
            memory=memory_choice,
            arch=config.arch,
            shipped_quality=shipped,
        )
        report.write(root)
    return PackResult(config.bundle_dir, report)


def _quality_as_shipped(
    prepared: Prepared, evaluated: Evaluated, deps: Collaborators, threads: int | None, progress: Progress
) -> ShippedQuality | None:
    """The chosen model's quality measured again at the intra-op threads the bundle ships with, when they
    are not the threads every candidate was measured at (one per visible core): some int8 kernels (dynamic
    LSTM, for one) answer differently with one thread than with two. A drop the user does not allow at the
    shipped threads refuses the pack, as it would have refused the candidate."""
    measured_at = visible_cores()
    chosen, check = evaluated.fit.chosen, evaluated.check
    if threads is None or threads == measured_at or check is None:
        return None
    progress(f"checking {chosen.recipe}'s quality at the {threads} onnxruntime thread(s) it ships with")
    quality = deps.measure(chosen.path, check, threads=threads).quality
    shipped = ShippedQuality(threads, quality, measured_at, chosen.measurement.quality)
    drop = evaluated.fit.baseline.quality - quality
    if drop > prepared.config.max_drop + 1e-9:
        raise NoFitError(
            f"{chosen.recipe} loses {100 * drop:.2f} pts at the {threads} onnxruntime thread(s) its memory size "
            f"ships with (measured at {measured_at}: {100 * (evaluated.fit.baseline.quality - chosen.measurement.quality):.2f}), "
            f"more than the {100 * prepared.config.max_drop:.2f} allowed: pass a larger --max-drop, or --recipes without it"
        )
    return shipped


def _memory(
    prepared: Prepared, evaluated: Evaluated, deps: Collaborators, progress: Progress, notes: list[str]
) -> memory.MemoryChoice | None:
    """MemorySize from the chosen model's handler measured under each size's CPU share, or None (with a
    note) where that cannot be measured: MemorySize then follows the peak RSS."""
    if deps.sweep is None:
        return None
    chosen = evaluated.fit.chosen
    floor = memory.floor_mb(chosen.measurement.peak_rss_mb)
    if floor > memory.MEASURABLE_MB:
        notes.append(f"the model needs {floor} MB: sizes above {memory.MEASURABLE_MB} MB are not measured here")
        return None
    staged = memory.stage_model_dir(
        prepared.work / "sweep",
        chosen.path,
        _manifest(prepared, evaluated, floor),
        predict_body(_sample(prepared.data.eval, prepared.inputs)),
        prepared.preprocessing.files,
    )
    sizes = memory.sweep_sizes(floor)
    progress(f"measuring the handler at {len(sizes)} memory sizes under Lambda's CPU share")
    try:
        choice = deps.sweep(staged, sizes, prepared.config.memory_objective, prepared.config.arch, floor)
    except QuotaUnavailableError as exc:
        notes.append(f"{exc}; MemorySize is the peak RSS with headroom")
        return None
    if note := choice.contention_note:
        notes.append(note)
    return choice


def _manifest(prepared: Prepared, evaluated: Evaluated, memory_mb: int) -> Manifest:
    chosen, baseline = evaluated.fit.chosen, evaluated.fit.baseline
    digest = sha256_file(chosen.path)
    return replace(
        evaluated.manifest,
        version=digest[:12],
        sha256=digest,
        recipe=chosen.recipe,
        metrics=chosen.measurement.to_manifest(baseline),
        runtime=RuntimeHints(memory_mb=memory_mb),
        preprocessing=prepared.preprocessing.config,
    )


PROBE_ROWS = 16


def _limits(manifest: Manifest, chosen: Measured, data: Dataset, deps: Collaborators, memory_mb: int) -> RequestLimits:
    """Request limits from the chosen model's costs: memory per row from fresh processes at 1 and at
    PROBE_ROWS rows (or from the tensors' sizes when the graph takes a fixed batch or no rows)."""
    m = chosen.measurement
    per_row_ms = max(0.0, (m.p50_batch8_ms - m.p50_ms) / 7)
    if manifest.batched and manifest.fixed_batch is None:
        peak = deps.probe(chosen.path, data, PROBE_ROWS)["peak_rss_mb"]
        per_row_mb = max(0.0, (peak - m.peak_rss_mb) / (PROBE_ROWS - 1))
    else:
        elements = per_row_elements(manifest, outputs=False) + per_row_elements(manifest, outputs=True)
        per_row_mb = 3 * 4 * elements / 1e6
    costs = RowCosts(base_mb=m.peak_rss_mb, per_row_mb=per_row_mb, base_ms=m.p50_ms, per_row_ms=per_row_ms)
    return derive(manifest, costs, memory_mb, LAMBDA_TIMEOUT_S)


def _sample(data: Dataset, specs: tuple[TensorSpec, ...]) -> dict[str, object]:
    """One row of each input that a request must send, as JSON."""
    row = data.feed(1)
    return {spec.name: row[spec.name].tolist() for spec in specs if spec.default is None}


def app_model(config: PackConfig, description: str, **measured: Any) -> AppModel:
    """The SAM application of a pack: what the config fixes (name, runtime, architecture, package, API,
    auth, concurrency), and what the pack chose (`measured`: memory, settings, model size, ...)."""
    return AppModel(
        name=config.name,
        description=description,
        code_dir="./function",
        python=config.python,
        arch=config.arch,
        package_type=config.package,
        api=config.api,
        auth=config.auth,
        reserved_concurrency=config.reserved_concurrency,
        provisioned_concurrency=config.provisioned_concurrency,
        **measured,
    )
