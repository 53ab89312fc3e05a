"""The `lambdafit` command: parses arguments, calls the library, prints. Errors exit 2 with one line."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from handlers.contract import ApiKind
from packager import interrupt
from packager.config import (
    DEFAULT_PYTHON,
    ENV_PYTHON,
    Arch,
    Auth,
    CalibrationMethod,
    MemoryObjective,
    Mode,
    Objective,
    PackageType,
)
from packager.errors import LambdafitError, NoFitError

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.status import Status

    from packager.config import PackConfig
    from packager.fit import Judged
    from packager.pack import PackResult

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Fit a model into AWS Lambda and serve it.",
)
out = Console()
if not out.is_terminal:
    out = Console(width=200)
err = Console(stderr=True)


def _fail(error: Exception) -> None:
    err.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@app.command()
def pack(
    model: Annotated[
        str, typer.Argument(help="an .onnx file, a torch factory file.py:function, or a Hugging Face checkpoint folder")
    ],
    name: Annotated[str, typer.Option(help="endpoint name: the bundle folder, stack and function")],
    output: Annotated[Path, typer.Option("--output", "-o", help="folder that receives build/NAME")] = Path("build"),
    eval_data: Annotated[
        Path | None, typer.Option("--eval", help=".npz of inputs (and labels) to measure quality")
    ] = None,
    calibration: Annotated[Path | None, typer.Option(help=".npz of representative inputs for static int8")] = None,
    max_drop: Annotated[
        float, typer.Option(help="largest quality drop allowed, as a fraction (0.01 = 1 point)")
    ] = 0.01,
    budget: Annotated[
        str | None, typer.Option(help="zip, zip-upload, image, or a size such as 80MB [default: the package's limit]")
    ] = None,
    arch: Annotated[Arch, typer.Option(help="Lambda architecture")] = Arch.X86_64,
    python: Annotated[
        str | None,
        typer.Option(help=f"Lambda Python runtime [env {ENV_PYTHON}; default {DEFAULT_PYTHON}]"),
    ] = None,
    objective: Annotated[Objective, typer.Option(help="what the chosen candidate is best at")] = Objective.LATENCY,
    recipes: Annotated[str, typer.Option(help="auto, or a comma list such as slim,slim+int8-static")] = "auto",
    labels: Annotated[str | None, typer.Option(help="class names, comma separated, for a classifier")] = None,
    wheels: Annotated[
        Path | None, typer.Option(help="folder of pre-downloaded runtime wheels (offline packing)")
    ] = None,
    train: Annotated[
        Path | None, typer.Option(help=".npz of inputs for distillation after pruning (no labels needed)")
    ] = None,
    student: Annotated[
        str | None, typer.Option(help="a smaller torch factory file.py:function to distill into")
    ] = None,
    calibration_method: Annotated[
        CalibrationMethod, typer.Option(help="static int8 calibration")
    ] = CalibrationMethod.MINMAX,
    package: Annotated[
        PackageType | None, typer.Option(help="Lambda package type [default: image, or zip for a zip budget]")
    ] = None,
    allow_slower: Annotated[bool, typer.Option(help="let a candidate slower than fp32 be chosen")] = False,
    api: Annotated[
        ApiKind, typer.Option(help="front door: API Gateway REST API, HTTP API, or function URL")
    ] = ApiKind.REST,
    auth: Annotated[
        Auth, typer.Option(help="who may call it: AWS IAM (SigV4), an API key with a usage plan, or anyone")
    ] = Auth.IAM,
    model_store: Annotated[
        str | None, typer.Option(help="s3://bucket/prefix: upload the model there, fetch it at init")
    ] = None,
    reserved_concurrency: Annotated[int | None, typer.Option(min=0, help="cap on concurrent executions")] = None,
    provisioned_concurrency: Annotated[int | None, typer.Option(min=1, help="pre-initialized environments")] = None,
    preprocess: Annotated[
        Path | None, typer.Option(help="JSON: let clients send images or text (see handlers/codecs.py)")
    ] = None,
    tracing: Annotated[bool, typer.Option(help="X-Ray traces from inside the function (powertools Tracer)")] = False,
    batch_axis: Annotated[
        list[str],
        typer.Option(help="NAME=AXIS (or NAME=none) for an input whose batch axis the graph does not name; repeatable"),
    ] = [],  # noqa: B006 (typer reads the default; it is never mutated)
    dim: Annotated[
        list[str], typer.Option(help="NAME=MIN:MAX bounds on a symbolic dimension requests may vary; repeatable")
    ] = [],  # noqa: B006
    classifier_output: Annotated[
        str | None, typer.Option(help="the output holding class scores, when its name does not say so")
    ] = None,
    mode: Annotated[
        Mode,
        typer.Option(
            help="api: the HTTP endpoint; batch: also a batch function fed by SQS (partial failures, DLQ), "
            "asynchronous invocations (on-failure destination) and a Step Functions Distributed Map over S3"
        ),
    ] = Mode.API,
    memory_objective: Annotated[
        MemoryObjective,
        typer.Option(
            help="what MemorySize minimizes, from the handler measured under each size's CPU share (as AWS Lambda "
            "Power Tuning): cost (fastest of the sizes within 5% of the cheapest), latency, or balanced"
        ),
    ] = MemoryObjective.COST,
    snapstart: Annotated[
        bool | None,
        typer.Option(
            "--snapstart/--no-snapstart",
            help="Lambda SnapStart on published versions [default: on for python3.12+ when the model's cold load "
            "takes 500 ms or more at the function's CPU share]",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option(help="replace an existing bundle of the same name (only a folder pack wrote)")
    ] = False,
    trust_pickle: Annotated[
        bool,
        typer.Option(
            help="load a .joblib/.pkl MODEL with pickle at pack time, which runs the code inside it (only for "
            "files you made or trust); the bundle ships ONNX only"
        ),
    ] = False,
    task: Annotated[
        str | None,
        typer.Option(
            help="for a Hugging Face checkpoint folder: text-classification, token-classification, question-answering, "
            "fill-mask, feature-extraction or image-classification [default: from config.json's architectures]"
        ),
    ] = None,
) -> None:
    """Export, optimize and measure MODEL, choose the best candidate that fits, write a SAM bundle."""
    from packager.config import Budget, PackConfig, resolve

    try:
        config = PackConfig(
            model=model,
            name=name,
            output_dir=output,
            eval_data=eval_data,
            calibration_data=calibration,
            max_drop=max_drop,
            budget=Budget.parse(budget) if budget is not None else None,
            package_type=package,
            arch=arch,
            objective=objective,
            recipes=tuple(recipes.split(",")),
            labels=tuple(labels.split(",")) if labels else (),
            force=force,
            wheel_dir=wheels,
            train_data=train,
            student=student,
            calibration_method=calibration_method,
            allow_slower=allow_slower,
            api=api,
            auth=auth,
            model_store=model_store,
            reserved_concurrency=reserved_concurrency,
            provisioned_concurrency=provisioned_concurrency,
            preprocess=preprocess,
            tracing=tracing,
            python=resolve(python, ENV_PYTHON, DEFAULT_PYTHON),
            batch_axes=tuple(batch_axis),
            dims=tuple(dim),
            classifier_output=classifier_output,
            trust_pickle=trust_pickle,
            task=task,
            snapstart=snapstart,
            memory_objective=memory_objective,
            mode=mode,
        )
        result = _run_pack(config)
    except interrupt.Interrupted as stop:
        bundle = config.bundle_dir
        kept = f"{bundle} is as it was" if bundle.exists() else f"{bundle} was not written"
        err.print(
            f"[bold red]interrupted[/] by {stop.name}: {kept}, and nothing else is left",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(stop.exit_code) from None
    except NoFitError as error:
        if error.rejection is not None:
            _print_table(name, error.rejection, config.limit.limit_bytes)
        _fail(error)
        return
    except LambdafitError as error:
        _fail(error)
        return
    report = result.report
    _print_table(name, report.fit, report.budget.limit_bytes)
    for note in report.notes:
        out.print(f"note: {note}", highlight=False)
    out.print(f"chose [bold]{report.fit.chosen.recipe}[/]: {report.fit.why}", highlight=False)
    out.print(
        f"memory {report.cost.memory_mb} MB, about ${report.cost.usd_per_million:.2f} per million requests "
        f"({report.cost.assumptions})",
        highlight=False,
    )
    if report.snapstart is not None:
        out.print(report.snapstart.describe(), highlight=False)
    out.print(f"wrote {result.bundle}  (next: lambdafit serve {result.bundle})", highlight=False)


def _run_pack(config: PackConfig) -> PackResult:
    """`pack`, with SIGINT and SIGTERM as interruptions: whatever error a signal caused (a library may
    wrap or swallow it), the signal is what is reported. A model's code that calls sys.exit() is an error."""
    from packager.pack import pack as run_pack

    with interrupt.catching():
        try:
            with err.status("packing") as status:
                return run_pack(config, progress=_progress(status))
        except Exception:
            interrupt.check()
            raise
        except SystemExit as exc:
            interrupt.check()
            raise LambdafitError(
                f"the model's code called sys.exit({exc.code!r}) while lambdafit ran it: return or raise instead"
            ) from None


def _progress(status: Status) -> Callable[[str], None]:
    """Each stage as it starts: on the spinner in a terminal, else one line each (logs, CI, scripts).
    A stage starts only if no signal came during the last one."""

    def report(message: str) -> None:
        interrupt.check()
        if err.is_terminal:
            status.update(message)
        else:
            err.print(f"... {message}", highlight=False, soft_wrap=True)

    return report


def _print_table(name: str, judged: Judged, budget_bytes: int) -> None:
    from packager.report import COLUMNS, rows

    table = Table(title=f"candidates for {name} (quality: {judged.baseline.quality_kind})")
    for column in COLUMNS:
        text = column in ("recipe", "verdict")
        table.add_column(column, justify="left" if text else "right", no_wrap=column == "recipe")
    for row in rows(judged, budget_bytes):
        table.add_row(*row, style="bold green" if row[-1] == "CHOSEN" else None)
    out.print(table)


@app.command()
def serve(
    bundle: Annotated[Path, typer.Argument(help="a bundle written by lambdafit pack, e.g. build/digits")],
    port: Annotated[int, typer.Option(min=0, max=65535, help="port on 127.0.0.1 (0: any free port)")] = 3000,
    host: Annotated[str, typer.Option(help="loopback address to listen on")] = "127.0.0.1",
    verbose: Annotated[bool, typer.Option(help="log every request and print EMF metrics")] = False,
    api: Annotated[
        ApiKind | None,
        typer.Option(help="event shape: REST API (v1), HTTP API (v2) or function URL [default: as packed]"),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="processes serving requests, like warm containers")] = 1,
) -> None:
    """Serve BUNDLE's handler on 127.0.0.1 through emulated API Gateway events, without Docker."""
    from packager.emulator import serve_bundle, serve_workers

    if not verbose:
        os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    try:
        server = serve_bundle(bundle, host=host, port=port, verbose=verbose, api=api, load=False)
    except LambdafitError as error:
        _fail(error)
        return
    out.print(
        f"serving {bundle} on http://{host}:{server.server_address[1]}  ({server.api.value} events; POST /predict, /v2/..., GET /docs; Ctrl-C stops)",
        highlight=False,
    )
    sys.stdout.flush()
    with contextlib.suppress(interrupt.Interrupted, KeyboardInterrupt), interrupt.catching():
        serve_workers(server, workers)  # SIGINT or SIGTERM: every worker stopped and waited for, exit 0


@app.command()
def batch(
    bundle: Annotated[Path, typer.Argument(help="a bundle written by lambdafit pack, e.g. build/digits")],
    source: Annotated[Path, typer.Argument(metavar="INPUT", help=".jsonl of /predict bodies, or .csv of rows")],
    target: Annotated[Path, typer.Argument(metavar="OUTPUT", help=".jsonl of answers, one line per row")],
) -> None:
    """Run BUNDLE's handler over every row of INPUT, as the batch function does on AWS, into OUTPUT."""
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")  # the lines are the output; errors still log
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from packager.batch import count_rows, run_batch

    try:
        total = count_rows(source) if source.is_file() else None
        columns = (*Progress.get_default_columns()[:2], BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=err, transient=True) as bar:
            task = bar.add_task("scoring", total=total)
            run = run_batch(bundle, source, target, progress=lambda done: bar.update(task, completed=done))
    except LambdafitError as error:
        _fail(error)
        return
    out.print(
        f"wrote {run.rows} lines to {run.output} ({run.errors} rows answered with an error) in {run.seconds:.1f} s: "
        f"{run.rows_per_s:,.0f} rows/s, peak memory {run.peak_rss_mb:.0f} MB",
        highlight=False,
    )


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as error:
        if os.environ.get("LAMBDAFIT_DEBUG"):
            raise
        err.print(
            f"[bold red]internal error:[/] {type(error).__name__}: {error} "
            "(a lambdafit bug: rerun with LAMBDAFIT_DEBUG=1 for the traceback and report it)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
