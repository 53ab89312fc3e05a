"""`pack --task text-generation`: prepare -> evaluate -> assemble, as packager.pack does for tensor models.

- prepare: read the checkpoint (refusing what the builder cannot export), plan the candidates, vendor the
  runtime wheels with onnxruntime-genai;
- evaluate: build each candidate with onnxruntime-genai's builder, measure it in a fresh process against
  fp32 (perplexity, greedy agreement, time to first token, tokens per second, peak memory), choose by the
  fitter's rules (budget, max drop, not slower per token than fp32);
- assemble: the manifest's generation section, the template (streaming front door, memory and timeout
  from the measurement), the bundle and its report.

The builder, the measuring probe and the wheel index are injected collaborators, as in packager.pack.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Protocol

from handlers.contract import GENAI_CONFIG_FILE, ApiKind, RuntimeSettings
from handlers.errors import reason
from handlers.manifest import GenerationSpec, Manifest, RuntimeHints, Task, sha256_file
from packager.bundle import BundleSpec, check_target, fill, staged
from packager.config import Arch, PackageType, PackConfig
from packager.cost import MB_PER_VCPU, PRICE_PER_GB_SECOND, PRICE_PER_MILLION_REQUESTS, CostEstimate, memory_for
from packager.errors import LambdafitError
from packager.fit import Candidate, Failed, FitResult, Measured, choose
from packager.generate.checkpoint import Checkpoint, count_parameters, read_checkpoint
from packager.generate.measure import EvalOptions, ProbeResult, measurement, probe, sample_text
from packager.generate.recipes import BASELINE, GenerationRecipe, build, plan
from packager.generate.report import GenerationReport
from packager.pack import PackResult, app_model
from packager.size import PackageSize
from packager.template import LAMBDA_TIMEOUT_S
from packager.wheels import WheelSet, glibc_warning, vendor_wheels

Progress = Callable[[str], None]
EXTRA = "generation"
"""handlers/requirements-extra.txt's line for onnxruntime-genai."""
BUFFERED_SECONDS = 25.0
"""A non-streamed answer must be complete before API Gateway's 29 s."""
MAX_TIMEOUT_S = 900
MIN_TIMEOUT_S = 60
TIMEOUT_MARGIN = 1.5
DEFAULT_MAX_TOKENS = 512
TOKENS_PER_ANSWER = 256
"""The answer length the cost estimate assumes."""


class WheelSource(Protocol):
    def __call__(self, python: str, arch: Arch, extras: tuple[str, ...]) -> WheelSet: ...


class Builder(Protocol):
    def __call__(self, checkpoint: Path, recipe: GenerationRecipe, out: Path, cache: Path) -> Path: ...


class Prober(Protocol):
    def __call__(self, folder: Path, text: Path, options: EvalOptions, work: Path) -> ProbeResult: ...


@dataclass(frozen=True)
class GenerationCollaborators:
    wheels: WheelSource
    build: Builder
    probe: Prober

    @classmethod
    def default(cls, config: PackConfig) -> GenerationCollaborators:
        return cls(wheels=partial(vendor_wheels, wheel_dir=config.wheel_dir), build=build, probe=probe)


@dataclass(frozen=True)
class Prepared:
    config: PackConfig
    work: Path
    checkpoint: Checkpoint
    recipes: tuple[GenerationRecipe, ...]
    size: PackageSize
    notes: tuple[str, ...]


@dataclass(frozen=True)
class Evaluated:
    fit: FitResult
    eval_text: Path
    eval_source: str
    notes: tuple[str, ...] = ()


def _quiet(_: str) -> None:
    return None


def pack_generation(
    config: PackConfig,
    progress: Progress = _quiet,
    collaborators: GenerationCollaborators | None = None,
    options: EvalOptions | None = None,
) -> PackResult:
    deps = collaborators or GenerationCollaborators.default(config)
    check_target(config.bundle_dir, config.force)
    with tempfile.TemporaryDirectory(prefix="lambdafit-gen-") as tmp:
        prepared = prepare(config, Path(tmp), deps, progress)
        evaluated = evaluate(prepared, deps, progress, options or EvalOptions())
        return assemble(prepared, evaluated, progress)


NOT_FOR_GENERATION = {
    "model_store": "--model-store (the model folder ships in the bundle)",
    "tracing": "--tracing",
    "student": "--student",
    "train_data": "--train",
    "calibration_data": "--calibration",
    "preprocess": "--preprocess (the tokenizer and chat template come from the checkpoint)",
    "labels": "--labels",
    "batch_axes": "--batch-axis",
    "dims": "--dim",
    "classifier_output": "--classifier-output",
}


def prepare(config: PackConfig, work: Path, deps: GenerationCollaborators, progress: Progress) -> Prepared:
    given = [option for name, option in NOT_FOR_GENERATION.items() if getattr(config, name)]
    if given:
        raise LambdafitError(f"--task text-generation does not take {', '.join(given)}")
    progress(f"reading {config.model}")
    checkpoint = read_checkpoint(Path(config.model))
    recipes, notes = plan(config.recipes, checkpoint.tied_embeddings)
    progress(f"vendoring runtime wheels for python{config.python} {config.arch.value}")
    wheels = deps.wheels(config.python, config.arch, (EXTRA,))
    if warning := glibc_warning(wheels, config.python):
        notes.append(warning)
    if config.api is ApiKind.HTTP:
        notes.append(
            "HTTP APIs cannot stream: stream=true requests get their server-sent events all at once, after "
            "generation; pack with --api rest or --api url to stream"
        )
    return Prepared(config, work, checkpoint, tuple(recipes), PackageSize(config.package, config.limit, wheels),
                    tuple(notes))  # fmt: skip


def evaluate(prepared: Prepared, deps: GenerationCollaborators, progress: Progress, options: EvalOptions) -> Evaluated:
    config, work = prepared.config, prepared.work
    cache = work / "builder-cache"
    notes: list[str] = []
    built: dict[str, Path] = {}
    failures: dict[str, Failed] = {}
    total = len(prepared.recipes)
    for number, recipe in enumerate(prepared.recipes, start=1):
        progress(f"[{number}/{total}] {recipe.name}: building with onnxruntime-genai's model builder")
        try:
            built[recipe.name] = deps.build(prepared.checkpoint.folder, recipe, work / recipe.name, cache)
        except Exception as exc:
            if recipe.name == BASELINE:
                raise LambdafitError(
                    f"onnxruntime-genai's builder cannot export the fp32 model: {reason(exc)}"
                ) from exc
            failures[recipe.name] = Failed(recipe.name, reason(exc), str(exc))
    if config.eval_data is not None:
        text, source = config.eval_data, str(config.eval_data)
        if not text.is_file():
            raise LambdafitError(f"--eval {text} does not exist: give a UTF-8 text file of held-out text")
    else:
        progress("no --eval text: sampling text from fp32 to measure fidelity on")
        text, source = sample_text(built[BASELINE], work / "sampled.txt"), "text sampled from the fp32 model"
        notes.append("no --eval text: quality is fidelity to fp32 on text it sampled itself, which says little "
                     "about real prompts; give held-out text with --eval FILE.txt")  # fmt: skip
    parameters = count_parameters(prepared.checkpoint.folder)
    results: dict[str, ProbeResult] = {}
    candidates: list[Candidate] = []
    for number, recipe in enumerate(prepared.recipes, start=1):
        if recipe.name in failures:
            candidates.append(failures[recipe.name])
            continue
        progress(f"[{number}/{total}] {recipe.name}: measuring perplexity, speed and memory in a fresh process")
        folder = built[recipe.name]
        try:
            results[recipe.name] = deps.probe(folder, text, options, work)
            measured = measurement(folder, results[recipe.name], results.get(BASELINE, results[recipe.name]))
        except Exception as exc:
            if recipe.name == BASELINE:
                raise LambdafitError(f"the fp32 model does not run in onnxruntime-genai: {reason(exc)}") from exc
            candidates.append(Failed(recipe.name, reason(exc), str(exc)))
            continue
        package = prepared.size.of(measured.size_bytes, measured.compressed_bytes)
        candidates.append(Measured(recipe.name, folder, measured, package, parameters))
    baseline = candidates[0]
    assert isinstance(baseline, Measured)
    fit = choose(
        candidates,
        baseline.measurement,
        budget_bytes=config.limit.limit_bytes,
        max_drop=config.max_drop,
        objective=config.objective,
        allow_slower=config.allow_slower,
    )
    return Evaluated(fit, text, source, tuple(notes))


@dataclass(frozen=True)
class Plan:
    """What the measurement sets in the function: memory, timeout, and the generation limits."""

    memory_mb: int
    timeout_s: int
    spec: GenerationSpec
    cost: CostEstimate
    notes: tuple[str, ...] = field(default_factory=tuple)


def lambda_plan(prepared: Prepared, chosen: Measured, streaming: bool) -> Plan:
    """MemorySize from the peak RSS (with the KV cache at the full context); the timeout from the time to
    fill the whole context at Lambda's CPU share (a streaming front door, up to 15 minutes), else 29 s."""
    from packager.generate.measure import GenerationMeasurement

    m = chosen.measurement
    assert isinstance(m, GenerationMeasurement)
    folder = chosen.path
    config = json.loads((folder / GENAI_CONFIG_FILE).read_text(encoding="utf-8"))["model"]
    context = int(config["context_length"])
    eos = config.get("eos_token_id", [])
    memory = memory_for(m.peak_rss_mb)
    share = min(1.0, memory / MB_PER_VCPU)
    fill_s = (m.ttft_ms + context * m.p50_ms) / 1000 / share
    notes = []
    if streaming:
        timeout = int(min(MAX_TIMEOUT_S, max(MIN_TIMEOUT_S, math.ceil(TIMEOUT_MARGIN * fill_s + 10))))
        if TIMEOUT_MARGIN * fill_s + 10 > MAX_TIMEOUT_S:
            notes.append(f"filling the whole {context}-token context would take about {fill_s:.0f} s at {memory} MB: "
                         "answers stop at Lambda's 15 minutes with finish_reason length")  # fmt: skip
    else:
        timeout = LAMBDA_TIMEOUT_S
    spec = GenerationSpec(
        context_length=context,
        files={path.name: sha256_file(path) for path in sorted(folder.iterdir()) if path.is_file()},
        eos_token_ids=tuple(eos if isinstance(eos, list) else [eos]),
        chat_template=prepared.checkpoint.chat_template,
        default_max_tokens=min(DEFAULT_MAX_TOKENS, context - 1),
        buffered_seconds=BUFFERED_SECONDS,
        model_type=str(config.get("type", prepared.checkpoint.model_type)),
    )
    answer_ms = (m.ttft_ms + TOKENS_PER_ANSWER * m.p50_ms) / share
    compute = 1_000_000 * (memory / 1024) * (math.ceil(answer_ms) / 1000) * PRICE_PER_GB_SECOND[prepared.config.arch]
    cost = CostEstimate(
        memory_mb=memory,
        duration_ms=answer_ms,
        usd_per_million=round(compute + PRICE_PER_MILLION_REQUESTS, 4),
        assumptions=(
            f"answers of {TOKENS_PER_ANSWER} tokens at the tokens/s measured here, slowed to Lambda's {share:.2f} "
            f"vCPU share at {memory} MB, billed per ms; us-east-1 {prepared.config.arch.value} prices; API Gateway "
            "not included"
        ),
    )
    return Plan(memory, timeout, spec, cost, tuple(notes))


def assemble(prepared: Prepared, evaluated: Evaluated, progress: Progress) -> PackResult:
    config, fit = prepared.config, evaluated.fit
    chosen = fit.chosen
    notes = [*prepared.notes, *evaluated.notes]
    streaming = config.api is not ApiKind.HTTP
    lambda_ = lambda_plan(prepared, chosen, streaming)
    notes += lambda_.notes
    spec = lambda_.spec
    manifest = Manifest(
        name=config.name,
        version=spec.digest[:12],
        sha256=spec.digest,
        inputs=(),
        outputs=(),
        task=Task.TEXT_GENERATION,
        recipe=chosen.recipe,
        metrics=chosen.measurement.to_manifest(fit.baseline),
        runtime=RuntimeHints(memory_mb=lambda_.memory_mb),
        generation=spec,
    )
    settings = RuntimeSettings(
        service=config.name, metrics=True, stream_runtime=streaming and config.package is PackageType.ZIP
    )
    app = app_model(
        config,
        f"lambdafit text-generation endpoint for {config.name} ({chosen.recipe})",
        memory_mb=lambda_.memory_mb,
        timeout_s=lambda_.timeout_s,
        settings=settings,
        model_bytes=chosen.measurement.size_bytes,
        task=Task.TEXT_GENERATION,
    )
    progress(f"writing {config.bundle_dir}")
    files = {path.name: path for path in sorted(chosen.path.iterdir()) if path.is_file()}
    bundle = BundleSpec(
        app=app,
        manifest=manifest,
        model_path=files.pop(manifest.model_file),
        wheels=prepared.size.wheels,
        sample_inputs={},
        model_files=files,
    )
    with staged(config.bundle_dir, config.force) as root:
        bytecode = fill(bundle, root)
        report = GenerationReport(
            name=config.name,
            fit=fit,
            budget=config.limit,
            package=config.package,
            parts=prepared.size.parts(chosen.measurement.size_bytes, bytecode),
            notes=tuple(notes),
            cost=lambda_.cost,
            eval_rows=max(m.measurement.eval_tokens for m in _measured(fit)),  # type: ignore[attr-defined]
            eval_source=evaluated.eval_source,
            context_length=spec.context_length,
            timeout_s=lambda_.timeout_s,
            streaming=app.streaming,
        )
        report.write(root)
    return PackResult(config.bundle_dir, report)


def _measured(fit: FitResult) -> list[Measured]:
    return [v.candidate for v in fit.verdicts if isinstance(v.candidate, Measured)]
