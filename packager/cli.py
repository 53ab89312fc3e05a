"""The `lambdafit` command: parses arguments, calls the library, prints. Errors exit 2 with one line.

`pack`'s parameters are named as PackConfig's fields and take its defaults, so the flags, the config
file (packager.config_file) and Python callers share one list of options; a flag wins over the file
only when it was given on the command line."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from handlers.contract import ApiKind
from handlers.manifest import Task
from packager import interrupt
from packager.config import (
    ENV_PYTHON,
    Arch,
    Auth,
    CalibrationMethod,
    MemoryObjective,
    Mode,
    Objective,
    PackageType,
)
from packager.config_file import defaults
from packager.console import make_console, say
from packager.errors import LambdafitError, NoFitError

if TYPE_CHECKING:
    from packager.config import PackConfig
    from packager.config_file import OptionHelp
    from packager.fit import Judged
    from packager.invoke import Answer
    from packager.pack import PackResult

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    help="Fit a model into AWS Lambda, serve it, call it, deploy it.",
)
out = make_console()
err = make_console(stderr=True)


def _fail(error: Exception, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("lambdafit")
        except PackageNotFoundError:
            number = "unknown (not installed)"
        out.print(f"lambdafit {number} (python {sys.version.split()[0]})", highlight=False)
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    """Fit a model into AWS Lambda, serve it, call it, deploy it."""


_D = defaults()
"""PackConfig's defaults: the flags show and take them."""
_RECIPES = ",".join(_D["recipes"])


@app.command()
def pack(
    ctx: typer.Context,
    model: Annotated[
        str | None,
        typer.Argument(
            help="an .onnx file, a torch factory file.py:function, or a Hugging Face checkpoint folder "
            "[default: model in lambdafit.toml]",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(help="endpoint name: the bundle folder, stack and function [default: name in lambdafit.toml]"),
    ] = None,
    output_dir: Annotated[Path, typer.Option("--output", "-o", help="folder that receives NAME/")] = _D["output_dir"],
    eval_data: Annotated[
        Path | None, typer.Option("--eval", help=".npz of inputs (and labels) to measure quality")
    ] = None,
    calibration_data: Annotated[
        Path | None, typer.Option("--calibration", help=".npz of representative inputs for static int8")
    ] = None,
    max_drop: Annotated[float, typer.Option(help="largest quality drop allowed, as a fraction (0.01 = 1 point)")] = _D[
        "max_drop"
    ],
    budget: Annotated[
        str | None,
        typer.Option(help="zip, zip-upload, image, or a size such as 80MB [default: the package type's limit]"),
    ] = None,
    arch: Annotated[Arch, typer.Option(help="Lambda architecture")] = _D["arch"],
    python: Annotated[
        str | None,
        typer.Option(help=f"Lambda Python runtime: 3.11, 3.12 or 3.13 [default: ${ENV_PYTHON}, else 3.12]"),
    ] = None,
    objective: Annotated[Objective, typer.Option(help="what the chosen candidate is best at")] = _D["objective"],
    recipes: Annotated[str, typer.Option(help="auto, or a comma list such as slim,slim+int8-static")] = _RECIPES,
    labels: Annotated[str | None, typer.Option(help="class names, comma separated, for a classifier")] = None,
    wheel_dir: Annotated[
        Path | None, typer.Option("--wheels", help="folder of pre-downloaded runtime wheels (offline packing)")
    ] = None,
    train_data: Annotated[
        Path | None, typer.Option("--train", help=".npz of inputs for distillation after pruning (no labels needed)")
    ] = None,
    student: Annotated[
        str | None, typer.Option(help="a smaller torch factory file.py:function to distill into")
    ] = None,
    calibration_method: Annotated[CalibrationMethod, typer.Option(help="static int8 calibration")] = _D[
        "calibration_method"
    ],
    package_type: Annotated[
        PackageType | None,
        typer.Option("--package", help="Lambda package type [default: image, or zip for a zip budget]"),
    ] = None,
    allow_slower: Annotated[
        bool, typer.Option("--allow-slower", help="let a candidate slower than fp32 be chosen")
    ] = _D["allow_slower"],
    api: Annotated[ApiKind, typer.Option(help="front door: API Gateway REST API, HTTP API, or function URL")] = _D[
        "api"
    ],
    auth: Annotated[
        Auth, typer.Option(help="who may call it: AWS IAM (SigV4), an API key with a usage plan, or anyone")
    ] = _D["auth"],
    model_store: Annotated[
        str | None, typer.Option(help="s3://bucket/prefix: upload the model there, fetch it at init")
    ] = None,
    reserved_concurrency: Annotated[
        int | None, typer.Option(min=0, metavar="N", help="cap on concurrent executions")
    ] = None,
    provisioned_concurrency: Annotated[
        int | None, typer.Option(min=1, metavar="N", help="pre-initialized environments")
    ] = None,
    preprocess: Annotated[
        Path | None, typer.Option(help="JSON: let clients send images or text (format: docs/preprocess.md)")
    ] = None,
    outputs: Annotated[
        str,
        typer.Option(
            help="what /predict returns: auto (outputs up to 10,000 numbers a row), all, none (a classifier's "
            "predictions only), or output names, comma separated"
        ),
    ] = ",".join(_D["outputs"]),
    top_k: Annotated[int, typer.Option(min=1, metavar="K", help="classes per row in a classifier's predictions")] = _D[
        "top_k"
    ],
    tracing: Annotated[
        bool, typer.Option("--tracing", help="X-Ray traces from inside the function (powertools Tracer)")
    ] = _D["tracing"],
    batch_axes: Annotated[
        list[str],
        typer.Option(
            "--batch-axis",
            metavar="NAME=AXIS",
            help="NAME=AXIS (or NAME=none) for an input whose batch axis the graph does not name; repeatable",
        ),
    ] = [],  # noqa: B006 (typer reads the default; it is never mutated)
    dims: Annotated[
        list[str],
        typer.Option(
            "--dim", metavar="NAME=MIN:MAX", help="NAME=MIN:MAX bounds on a symbolic dimension requests may vary"
        ),
    ] = [],  # noqa: B006
    classifier_output: Annotated[
        str | None, typer.Option(help="the output holding class scores, when its name does not say so")
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(
            help="file.py:function(outputs, reference) -> float in [0, 1], higher is better: your own quality "
            "metric over the candidate's and fp32's outputs [default: by task]"
        ),
    ] = _D["metric"],
    mode: Annotated[
        Mode,
        typer.Option(
            help="api: the HTTP endpoint; batch: also a batch function fed by SQS (partial failures, DLQ), "
            "asynchronous invocations (on-failure destination) and a Step Functions Distributed Map over S3"
        ),
    ] = _D["mode"],
    memory_objective: Annotated[
        MemoryObjective,
        typer.Option(
            help="what MemorySize minimizes, from the handler measured under each size's CPU share (as AWS Lambda "
            "Power Tuning): cost (fastest of the sizes within 5% of the cheapest), latency, or balanced"
        ),
    ] = _D["memory_objective"],
    snapstart: Annotated[
        bool | None,
        typer.Option(
            "--snapstart/--no-snapstart",
            help="Lambda SnapStart on published versions [default: on for python3.12+ when the model's cold load "
            "takes 500 ms or more at the function's CPU share]",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="replace an existing bundle of the same name (only a folder pack wrote)"),
    ] = _D["force"],
    trust_pickle: Annotated[
        bool,
        typer.Option(
            "--trust-pickle",
            help="load a .joblib/.pkl MODEL with pickle at pack time, which runs the code inside it (only for "
            "files you made or trust); the bundle ships ONNX only",
        ),
    ] = _D["trust_pickle"],
    task: Annotated[
        str | None,
        typer.Option(
            help="for a Hugging Face checkpoint folder: text-classification, token-classification, question-answering, "
            "fill-mask, feature-extraction, image-classification or text-generation (a decoder served through an "
            "OpenAI-compatible, streaming API; --eval takes held-out text) [default: from config.json's architectures]"
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="options from this lambdafit.toml or pyproject.toml [default: ./lambdafit.toml, else "
            "./pyproject.toml's [tool.lambdafit]]",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON on stdout, nothing else")] = False,
) -> None:
    """Optimize and measure MODEL, choose what fits, write a SAM bundle.

    Exports MODEL to ONNX, measures every recipe, ships the best candidate that fits the budget. Every option can also live in lambdafit.toml (lambdafit init MODEL writes one); a flag wins over it."""
    from packager import config_file

    given = {
        key: value
        for key, value in ctx.params.items()
        if key in config_file.option_names() and _on_command_line(ctx, key)
    }
    resolved = None
    with interrupt.catching():  # until the outcome is printed (pack settles it first)
        try:
            path = config or config_file.find(Path.cwd())
            file = config_file.load(path) if path is not None else None
            if file is not None and not as_json:
                say(err, f"options from {file.path}")
            resolved = config_file.build(given, file)
            result = _run_pack(resolved)
        except interrupt.Interrupted as stop:
            bundle = resolved.bundle_dir if resolved is not None else None
            kept = (
                ""
                if bundle is None
                else (f"{bundle} is as it was, " if bundle.exists() else f"{bundle} was not written, ")
            )
            err.print(
                f"[bold red]interrupted[/] by {stop.name}: {kept}and nothing else is left",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(stop.exit_code) from None
        except NoFitError as error:
            if as_json:
                sys.stdout.write(json.dumps({"error": str(error), "code": "no_fit"}) + "\n")
            elif error.rejection is not None and resolved is not None:
                _print_table(resolved.name, error.rejection, resolved.limit.limit_bytes)
            _fail(error)
            return
        except LambdafitError as error:
            _fail(error)
            return
        report = result.report
        if as_json:
            sys.stdout.write(json.dumps(report.to_json() | {"bundle": str(result.bundle)}, indent=2) + "\n")
            return
        _print_table(report.name, report.fit, report.budget.limit_bytes)
        for note in report.notes:
            say(out, f"note: {note}")
        say(out, f"chose {report.fit.chosen.recipe}: {report.fit.why}")
        say(
            out,
            f"memory {report.cost.memory_mb} MB, about ${report.cost.usd_per_million:.2f} per million requests "
            f"({report.cost.assumptions})",
        )
        if report.snapstart is not None:
            say(out, report.snapstart.describe())
        say(out, f"wrote {result.bundle}  (next: lambdafit serve {result.bundle}, or lambdafit invoke {result.bundle})")


def _on_command_line(ctx: typer.Context, key: str) -> bool:
    """Whether the user gave this parameter (typer vendors its own click: compare by the source's name)."""
    source = ctx.get_parameter_source(key)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def _run_pack(config: PackConfig) -> PackResult:
    """`pack`, with SIGINT and SIGTERM as interruptions: whatever error a signal caused (a library may
    wrap or swallow it), the signal is what is reported. A model's code that calls sys.exit() is an error.
    A stage starts only if no signal came during the last one."""
    from packager.console import PackProgress
    from packager.pack import pack as run_pack

    with interrupt.catching():
        try:
            with PackProgress(err) as progress:

                def report(message: str) -> None:
                    interrupt.check()
                    progress(message)

                return run_pack(config, progress=report)
        except Exception:
            interrupt.check()
            raise
        except SystemExit as exc:
            interrupt.check()
            raise LambdafitError(
                f"the model's code called sys.exit({exc.code!r}) while lambdafit ran it: return or raise instead"
            ) from None
        finally:
            interrupt.settle()


def _print_table(name: str, judged: Judged, budget_bytes: int) -> None:
    from packager.console import candidates_table
    from packager.generate import report as generation

    if generation.is_generation(judged):
        from rich.table import Table

        table = Table(title=f"candidates for {name} (quality: {judged.baseline.quality_kind})")
        for column in generation.COLUMNS:
            table.add_column(column, justify="left" if column in ("recipe", "verdict") else "right")
        for row in generation.rows(judged, budget_bytes):
            table.add_row(*row, style="bold" if row[-1] == "CHOSEN" else None)
        out.print(table)
        return
    out.print(candidates_table(judged, budget_bytes, name, out.width))


def option_help() -> dict[str, OptionHelp]:
    """Each pack option's flag and help text, read off the command itself (for `init`'s comments)."""
    from packager.config_file import OptionHelp

    command = typer.main.get_command(app)
    pack_command = command.commands["pack"]  # type: ignore[attr-defined]
    helps = {}
    for param in pack_command.params:
        flag = max(param.opts, key=len) if param.opts else param.name
        helps[param.name] = OptionHelp(flag if flag.startswith("-") else flag.upper(), getattr(param, "help", "") or "")
    return helps


@app.command()
def init(
    model: Annotated[
        str, typer.Argument(help="an .onnx file, a torch factory file.py:function, or a checkpoint folder")
    ],
    name: Annotated[str | None, typer.Option(help="endpoint name [default: from the model's file name]")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="the file to write")] = Path("lambdafit.toml"),
    force: Annotated[bool, typer.Option("--force", help="replace an existing file")] = False,
) -> None:
    """Write a commented lambdafit.toml for MODEL.

    Every pack option at its default, the model's signature, the data files found beside it."""
    from packager.config_file import write_init

    try:
        written = write_init(model, output, option_help(), name=name, force=force)
    except LambdafitError as error:
        _fail(error)
        return
    say(out, f"wrote {written}  (next: edit it, then lambdafit pack)")


@app.command()
def serve(
    bundle: Annotated[Path, typer.Argument(help="a bundle written by lambdafit pack, e.g. build/digits")],
    port: Annotated[int, typer.Option(min=0, max=65535, help="port to listen on (0: any free port)")] = 3000,
    host: Annotated[
        str,
        typer.Option(
            help="address to listen on; anything but loopback (0.0.0.0 in a dev container) lets anyone who "
            "reaches this machine call the model, with no auth"
        ),
    ] = "127.0.0.1",
    verbose: Annotated[bool, typer.Option("--verbose", help="log every request and print EMF metrics")] = False,
    api: Annotated[
        ApiKind | None,
        typer.Option(help="event shape: REST API (v1), HTTP API (v2) or function URL [default: as packed]"),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="processes serving requests, like warm containers")] = 1,
) -> None:
    """Serve BUNDLE locally, without Docker.

    Each HTTP request becomes the API Gateway event the function receives in AWS."""
    from packager.emulator import is_loopback, serve_bundle, serve_workers

    if not verbose:
        os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    remote = not is_loopback(host)
    if remote:
        err.print(
            f"[bold yellow]warning:[/] listening on {host}, not loopback: anyone who can reach this machine on port "
            f"{port} can call the model, and lambdafit serve checks no auth. It is a development server.",
            highlight=False,
            soft_wrap=True,
        )
    try:
        server = serve_bundle(bundle, host=host, port=port, verbose=verbose, api=api, load=False, remote_ok=remote)
    except LambdafitError as error:
        _fail(error)
        return
    routes = "POST /predict, /v2/..., GET /docs"
    if server.task is Task.TEXT_GENERATION:
        routes = "POST /v1/chat/completions, /v1/completions, GET /v1/models; " + (
            "streaming" if server.streaming else "buffered"
        )
    say(
        out,
        f"serving {bundle} on http://{host}:{server.server_address[1]}  ({server.api.value} events; {routes}; "
        "Ctrl-C stops)",
    )
    sys.stdout.flush()
    with contextlib.suppress(interrupt.Interrupted, KeyboardInterrupt), interrupt.catching():
        serve_workers(server, workers)  # SIGINT or SIGTERM: every worker stopped and waited for, exit 0


@app.command()
def invoke(
    target: Annotated[
        str,
        typer.Argument(
            help="a bundle folder (its handler, in this process), a URL (lambdafit serve, sam local start-api, a "
            "deployed endpoint), or the name of a stack deployed with lambdafit deploy"
        ),
    ],
    stdin: Annotated[
        str | None, typer.Argument(metavar="[-]", help="- reads the body from stdin", show_default=False)
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="a JSON body (a bare list is the inputs), or an .npz of inputs")
    ] = None,
    image: Annotated[Path | None, typer.Option(help="a PNG or JPEG, sent as the body itself")] = None,
    text: Annotated[str | None, typer.Option(help="a text, sent as text/plain")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the answer as JSON, nothing else")] = False,
    bench_n: Annotated[
        int, typer.Option("--bench", min=0, help="send the request N times (after one warm-up): latency percentiles")
    ] = 0,
    deployed: Annotated[
        bool, typer.Option("--deployed", help="a bundle folder means its deployed stack (lambdafit deploy)")
    ] = False,
    auth: Annotated[
        Auth | None,
        typer.Option(help="the endpoint's auth [default: the deployment's; IAM for AWS hosts, none for others]"),
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(help="for --auth api-key [default: $LAMBDAFIT_API_KEY, or read from the stack]")
    ] = None,
    region: Annotated[
        str | None, typer.Option(help="for SigV4 [default: the deployment's, the URL's, or AWS's]")
    ] = None,
    profile: Annotated[str | None, typer.Option(help="AWS profile for SigV4 credentials")] = None,
    path: Annotated[str, typer.Option(help="the route to call")] = "/predict",
    timeout: Annotated[float, typer.Option(help="seconds to wait for an answer")] = 60.0,
) -> None:
    """Call TARGET once (or --bench N times) and print the answer.

    Sends an image, a text, JSON, or the bundle's sample request; signs with SigV4 for IAM auth."""
    from packager.invoke import TargetOptions, bench, payload_from, resolve_target, sample_of

    # A bundle's handler runs in this process: its logs and metrics would mix with the answer on stdout.
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    try:
        if stdin not in (None, "-"):
            raise LambdafitError(f"unexpected argument {stdin!r}: only - (read the body from stdin) may follow TARGET")
        options = TargetOptions(auth=auth, region=region, api_key=api_key, profile=profile, timeout=timeout,
                                deployed=deployed)  # fmt: skip
        endpoint, bundle = resolve_target(target, options)
        raw = sys.stdin.buffer.read() if stdin == "-" or data == Path("-") else None
        payload = payload_from(
            data=None if data == Path("-") else data,
            image=image,
            text=text,
            stdin=raw,
            sample=sample_of(bundle) if bundle is not None else None,
        )
        if not as_json:
            say(err, f"POST {path} to {endpoint.description}: {payload.what}")
        answer = endpoint.send("POST", path, payload)
        result = bench(endpoint, payload, bench_n, path) if bench_n else None
    except LambdafitError as error:
        _fail(error)
        return
    _print_answer(answer, as_json, result.percentiles() if result else None, result.errors if result else 0)
    if answer.status >= 400:
        raise typer.Exit(1)


def _print_answer(answer: Answer, as_json: bool, percentiles: dict[str, float] | None, errors: int) -> None:
    from packager.invoke import readable

    body = answer.json()
    if as_json:
        document: dict[str, Any] = {
            "status": answer.status,
            "body": body if body is not None else answer.body.decode(errors="replace"),
        }
        if percentiles is not None:
            document["bench"] = percentiles | {"errors": errors}
        sys.stdout.write(json.dumps(document) + "\n")
        return
    say(out, f"HTTP {answer.status} in {answer.seconds * 1000:.1f} ms")
    for line in readable(body if body is not None else answer.body.decode(errors="replace")):
        say(out, line)
    if percentiles is not None:
        say(
            out,
            "latency: "
            + ", ".join(
                f"{key.removesuffix('_ms')} {value:.2f} ms" for key, value in percentiles.items() if key.endswith("_ms")
            )
            + f"; {percentiles['requests_per_s']:.1f} requests/s, {errors} errors",
        )


@app.command()
def deploy(
    bundle: Annotated[Path, typer.Argument(help="a bundle written by lambdafit pack")],
    stack_name: Annotated[str | None, typer.Option(help="CloudFormation stack [default: the bundle's name]")] = None,
    region: Annotated[str | None, typer.Option(help="AWS region [default: AWS's configuration]")] = None,
    profile: Annotated[str | None, typer.Option(help="AWS profile")] = None,
    guided: Annotated[bool, typer.Option("--guided", help="sam deploy --guided: asks for every setting")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="deploy the change set without asking")] = False,
    pretranslate: Annotated[
        bool,
        typer.Option(
            "--pretranslate",
            help="run the SAM transform here and deploy plain CloudFormation, for endpoints that do not run "
            "transforms (moto_server through AWS_ENDPOINT_URL)",
        ),
    ] = False,
    sam_args: Annotated[list[str] | None, typer.Argument(help="more sam deploy options, after --")] = None,
) -> None:
    """Deploy BUNDLE with sam build and sam deploy.

    Prints the stack's endpoint and keeps it (BUNDLE/deployment.json) for lambdafit invoke."""
    from packager.deploy import deploy as run_deploy

    try:
        deployment = run_deploy(bundle, stack_name=stack_name, region=region, profile=profile, guided=guided,
                                confirm=not yes, pretranslate=pretranslate, extra=sam_args or ())  # fmt: skip
    except LambdafitError as error:
        _fail(error)
        return
    where = f" at {deployment.aws_endpoint_url}" if deployment.aws_endpoint_url else ""
    say(
        out,
        f"deployed stack {deployment.stack_name} in {deployment.region}{where}; function {deployment.function_name}",
    )
    if deployment.endpoint is None:
        say(out, f"no endpoint: the stack's Endpoint output did not resolve ({deployment.outputs.get('Endpoint')})")
        raise typer.Exit(1)
    say(out, f"endpoint: {deployment.endpoint}  ({deployment.api.value}, auth {deployment.auth.value})")
    say(out, f"next: lambdafit invoke {deployment.stack_name}   (or lambdafit invoke {bundle} --deployed)")


@app.command()
def delete(
    bundle: Annotated[Path, typer.Argument(help="a bundle deployed with lambdafit deploy")],
    region: Annotated[str | None, typer.Option(help="AWS region [default: the deployment's]")] = None,
    profile: Annotated[str | None, typer.Option(help="AWS profile")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="delete without asking")] = False,
) -> None:
    """Delete BUNDLE's stack with sam delete."""
    from packager.deploy import delete as run_delete

    try:
        stack = run_delete(bundle, region=region, profile=profile, confirm=not yes)
    except LambdafitError as error:
        _fail(error)
        return
    say(out, f"deleted stack {stack}")


@app.command()
def logs(
    bundle: Annotated[Path, typer.Argument(help="a bundle deployed with lambdafit deploy")],
    tail: Annotated[bool, typer.Option("--tail", help="keep following new log events")] = False,
    since: Annotated[
        str | None, typer.Option(help="start time, as sam logs takes it: 5mins ago, 2026-01-01T10:00")
    ] = None,
    filter_pattern: Annotated[
        str | None, typer.Option("--filter", help="CloudWatch filter pattern, e.g. ERROR")
    ] = None,
    region: Annotated[str | None, typer.Option(help="AWS region [default: the deployment's]")] = None,
    profile: Annotated[str | None, typer.Option(help="AWS profile")] = None,
) -> None:
    """Show BUNDLE's function logs with sam logs."""
    from packager.deploy import logs as run_logs

    try:
        run_logs(bundle, tail=tail, since=since, filter_pattern=filter_pattern, region=region, profile=profile)
    except LambdafitError as error:
        _fail(error)


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
    say(
        out,
        f"wrote {run.rows} lines to {run.output} ({run.errors} rows answered with an error) in {run.seconds:.1f} s: "
        f"{run.rows_per_s:,.0f} rows/s, peak memory {run.peak_rss_mb:.0f} MB",
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
