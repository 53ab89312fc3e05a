"""Pack, serve and check one corpus entry, the way a user would: `lambdafit pack` with default settings
(plus the entry's flags) in a subprocess, `lambdafit serve` on an ephemeral 127.0.0.1 port, then
requests over HTTP (POST /predict and POST /v2/models/NAME/infer) whose answers must equal onnxruntime
run directly on the bundle's model.onnx with the same inputs.

Used by bench/corpus.py (every entry, a table) and tests/functional/test_corpus.py (a slice).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from examples.corpus.registry import Arrays, Entry
from packager.console import messages

ROOT = Path(__file__).resolve().parents[2]
PYTHON = "3.11"
"""The Lambda runtime the corpus packs for: the offline SAM harness here only has python3.11."""
FLOAT_RTOL = 1e-5
FLOAT_ATOL = 1e-6
PACK_TIMEOUT_S = 1800
SERVE_START_S = 60


@dataclass
class Outcome:
    """What happened to one entry: packed and checked, refused, or broken."""

    entry: Entry
    status: str = "pending"
    """packed | refused | failed"""
    exit_code: int | None = None
    message: str = ""
    """The refusal line, or what went wrong."""
    inputs: str = ""
    recipe: str = ""
    size_ratio: float | None = None
    quality_drop: float | None = None
    p50_ratio: float | None = None
    int8: str = "n/a"
    """yes: an int8 candidate was produced and measured; no: one was planned and every one failed; n/a."""
    int8_errors: list[str] = field(default_factory=list)
    http: str = ""
    """ok (N requests, both routes) or what differed."""
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    bundle: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and self.status in ("packed", "refused")


def run(entry: Entry, out_dir: Path, *, python: str = PYTHON) -> Outcome:
    start = time.perf_counter()
    outcome = Outcome(entry)
    try:
        model = entry.obtain()
        eval_file = entry.eval_file(model)
        _pack(entry, model, eval_file, out_dir, python, outcome)
        if outcome.status == "packed" and outcome.bundle is not None:
            arrays = dict(np.load(eval_file, allow_pickle=False)) if eval_file else None
            _check_http(entry, outcome.bundle, arrays, outcome)
    except Exception as exc:  # a bench row, not a crash: the table shows what broke
        outcome.status = "failed"
        outcome.problems.append(f"{type(exc).__name__}: {exc}")
    outcome.seconds = time.perf_counter() - start
    return outcome


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("LAMBDAFIT_DEBUG", None)
    env.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    env.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    return env


def pack_command(entry: Entry, model: str, eval_file: Path | None, out_dir: Path, python: str) -> list[str]:
    command = [sys.executable, "-m", "packager.cli", "pack", model, "--name", entry.name, "--output", str(out_dir)]
    command += ["--python", python, "--force"]
    if eval_file is not None:
        command += ["--eval", str(eval_file)]
    return command + list(entry.flags)


def _pack(entry: Entry, model: str, eval_file: Path | None, out_dir: Path, python: str, outcome: Outcome) -> None:
    result = subprocess.run(
        pack_command(entry, model, eval_file, out_dir, python),
        capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=PACK_TIMEOUT_S, check=False,
    )  # fmt: skip
    outcome.exit_code = result.returncode
    lines = messages(result.stderr)
    if result.returncode == 0:
        outcome.status = "packed"
        outcome.bundle = out_dir / entry.name
        _read_report(outcome)
        if entry.refuses is not None:
            outcome.problems.append(f"packed, but the corpus expects a refusal ({entry.refuses!r})")
        return
    outcome.status = "refused" if result.returncode == 2 else "failed"
    outcome.message = lines[-1] if lines else result.stdout.strip()[-300:]
    if "Traceback" in result.stderr or "internal error" in result.stderr:
        outcome.status = "failed"
        outcome.problems.append("internal error: " + outcome.message)
    elif result.returncode != 2:
        outcome.problems.append(f"exit code {result.returncode}: {outcome.message}")
    elif len(lines) != 1 or not lines[0].startswith("error: "):
        outcome.problems.append(f"refusal is not one 'error:' line: {lines[-3:]}")
    elif entry.refuses is None:
        outcome.problems.append("refused, but the corpus expects it to pack")
    elif entry.refuses not in outcome.message:
        outcome.problems.append(f"refusal does not say {entry.refuses!r}")


def _read_report(outcome: Outcome) -> None:
    assert outcome.bundle is not None
    report = json.loads((outcome.bundle / "report.json").read_text())
    manifest = json.loads((outcome.bundle / "function" / "model" / "manifest.json").read_text())
    outcome.inputs = describe_inputs(manifest["inputs"])
    outcome.recipe = report["chosen"]
    rows = {row["recipe"]: row for row in report["candidates"]}
    base, chosen = rows["fp32"], rows[report["chosen"]]
    bm, cm = base["metrics"], chosen["metrics"]
    outcome.size_ratio = bm["size_bytes"] / max(cm["size_bytes"], 1)
    outcome.quality_drop = chosen["drop"] or 0.0
    outcome.p50_ratio = cm["p50_ms"] / bm["p50_ms"]
    int8 = [row for row in report["candidates"] if "int8" in row["recipe"]]
    if int8:
        measured = [row for row in int8 if row["metrics"] is not None]
        outcome.int8 = "yes" if measured else "no"
        outcome.int8_errors = [f"{row['recipe']}: {row['error']}" for row in int8 if row["metrics"] is None]


def describe_inputs(specs: list[dict[str, Any]]) -> str:
    short = {"float32": "f32", "float64": "f64", "int64": "i64", "int32": "i32", "string": "str", "uint8": "u8"}
    parts = []
    for spec in specs:
        dims = [
            (f"N={d}" if isinstance(d, int) else "N") if axis == spec["batch_axis"] else str(d)
            for axis, d in enumerate(spec["shape"])
        ]
        text = f"{spec['name']} {short.get(spec['dtype'], spec['dtype'])}[{','.join(dims)}]"
        if spec["batch_axis"] is None:
            default = spec.get("default")
            text += (
                " once"
                if default is None
                else "=" + (json.dumps(default) if not isinstance(default, list) else "default")
            )
        parts.append(text)
    return "; ".join(parts)


# Serving and checking


class Server:
    """`lambdafit serve BUNDLE --port 0` in a subprocess; the port is read from its first line."""

    def __init__(self, bundle: Path) -> None:
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed by close(), with the server)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "packager.cli", "serve", str(bundle), "--port", "0"],
            stdout=subprocess.PIPE, stderr=self.log, text=True, cwd=ROOT, env=_env(),
        )  # fmt: skip
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if not match:
            self.close()
            raise RuntimeError(f"lambdafit serve did not start: {line.strip()} {self.errors()}")
        self.url = f"http://127.0.0.1:{match.group(1)}"

    def errors(self) -> str:
        """The end of what the server wrote to stderr."""
        self.log.seek(0)
        return self.log.read().strip()[-300:]

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        data = json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method="POST", headers={"content-type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_http(entry: Entry, bundle: Path, arrays: Arrays | None, outcome: Outcome) -> None:
    from handlers.manifest import Manifest

    model_dir = bundle / "function" / "model"
    manifest = Manifest.load(model_dir)
    reference = Reference(model_dir / manifest.model_file, manifest)
    requests = entry.build_requests(manifest, arrays)
    images = entry.images() if entry.images is not None else []
    differences: list[str] = []
    with Server(bundle) as server:
        for number, payload in enumerate(_image_payloads(images)):
            want = reference.run(reference.decode(payload))
            status, body = server.post("/predict", payload)
            if status != 200:
                differences.append(f"image request {number} /predict: {status} {body}")
            else:
                differences += [f"image request {number} /predict {d}" for d in _compare_predict(body, want)]
        for number, feed in enumerate(requests):
            want = reference.run(feed)
            status, body = server.post("/predict", {"inputs": {k: _json(v) for k, v in feed.items()}})
            if status != 200:
                differences.append(f"request {number} /predict: {status} {body}")
            else:
                differences += [f"request {number} /predict {d}" for d in _compare_predict(body, want)]
            status, body = server.post(f"/v2/models/{manifest.name}/infer", {"inputs": _v2_inputs(feed, manifest)})
            if status != 200:
                differences.append(f"request {number} /v2 infer: {status} {body}")
            else:
                differences += [f"request {number} /v2 {d}" for d in _compare_v2(body, want)]
    if differences:
        outcome.http = "DIFFERS"
        outcome.problems += differences[:4]
    else:
        outcome.http = f"ok ({len(requests)}x2" + (f" + {len(_image_payloads(images))} image" if images else "") + ")"


def _image_payloads(images: list[bytes]) -> list[dict[str, Any]]:
    """Each image in a request of its own, as {"image": ...} and then as {"images": [...]}."""
    import base64

    encoded = [base64.b64encode(image).decode() for image in images]
    return [{"image": item} if number % 2 == 0 else {"images": [item]} for number, item in enumerate(encoded)]


def _json(value: np.ndarray) -> Any:
    return value.tolist() if value.dtype != object else value.astype(str).tolist()


def _v2_inputs(feed: Arrays, manifest: Any) -> list[dict[str, Any]]:
    from handlers.v2 import DATATYPES

    specs = {spec.name: spec for spec in manifest.inputs}
    return [
        {"name": name, "shape": list(value.shape), "datatype": DATATYPES[specs[name].dtype],
         "data": _json(value.ravel()) if value.ndim else [_json(value)]}
        for name, value in feed.items()
    ]  # fmt: skip


class Reference:
    """onnxruntime on the shipped model file, with its own default session but the bundle's thread count
    (int8 kernels such as DynamicQuantizeLSTM quantize per thread's chunk: 1 and 2 threads differ by up to
    3e-3 on the LSTM here): the answer to expect. Inputs left out take the manifest's defaults; a
    fixed-batch graph runs one batch at a time."""

    def __init__(self, path: Path, manifest: Any) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # an old opset's warnings are the model's, and no news here
        if manifest.runtime.intra_op_threads:
            options.intra_op_num_threads = manifest.runtime.intra_op_threads
        self.session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        self.manifest = manifest
        self.names = [o.name for o in self.session.get_outputs()]

    def decode(self, payload: dict[str, Any]) -> Arrays:
        """The tensors an image request stands for, decoded by the bundle's own codec."""
        from handlers.codecs import make_codec

        codec = make_codec(self.manifest, Path("."))
        assert codec is not None
        return codec.decode(payload)

    def run(self, feed: Arrays) -> dict[str, Any]:
        full = {}
        for spec in self.manifest.inputs:
            value = feed[spec.name] if spec.name in feed else np.array(spec.default)
            full[spec.name] = value.astype(object) if spec.dtype == "string" else value.astype(spec.dtype)
        fixed = self.manifest.fixed_batch
        batched = [s for s in self.manifest.inputs if s.batch_axis is not None]
        rows = full[batched[0].name].shape[batched[0].batch_axis] if batched else 1
        if fixed is None or rows == fixed:
            return dict(zip(self.names, self.session.run(self.names, full), strict=True))
        parts = []
        for start in range(0, rows, fixed):
            index = [min(i, rows - 1) for i in range(start, start + fixed)]
            chunk = {
                s.name: full[s.name] if s.batch_axis is None else np.take(full[s.name], index, axis=s.batch_axis)
                for s in self.manifest.inputs
            }
            parts.append(dict(zip(self.names, self.session.run(self.names, chunk), strict=True)))
        out: dict[str, Any] = {}
        for spec in self.manifest.outputs:
            pieces = [part[spec.name] for part in parts]
            if isinstance(pieces[0], list):
                out[spec.name] = [row for piece in pieces for row in piece][:rows]
            else:
                whole = np.concatenate(pieces, axis=spec.batch_axis)
                out[spec.name] = np.take(whole, np.arange(rows), axis=spec.batch_axis)
        return out


def _compare_predict(body: dict[str, Any], want: dict[str, Any]) -> list[str]:
    got = body.get("outputs", {})
    problems = []
    for name, value in want.items():
        if name not in got:
            problems.append(f"output {name} missing")
            continue
        if isinstance(value, list):
            expected = [{str(k): v for k, v in row.items()} for row in value]
            problems += _compare_maps(name, got[name], expected)
        else:
            problems += _compare_array(name, got[name], value)
    return problems


def _compare_v2(body: dict[str, Any], want: dict[str, Any]) -> list[str]:
    tensors = {tensor["name"]: tensor for tensor in body.get("outputs", [])}
    problems = []
    for name, value in want.items():
        tensor = tensors.get(name)
        if tensor is None:
            problems.append(f"output {name} missing")
            continue
        if isinstance(value, list):
            expected = [{str(k): v for k, v in row.items()} for row in value]
            problems += _compare_maps(name, [json.loads(row) for row in tensor["data"]], expected)
            continue
        if list(tensor["shape"]) != list(value.shape):
            problems.append(f"output {name} shaped {tensor['shape']}, expected {list(value.shape)}")
            continue
        data = np.array(tensor["data"], dtype=object if value.dtype == object else None).reshape(value.shape)
        problems += _compare_array(name, data.tolist(), value)
    return problems


def _compare_array(name: str, got: Any, want: np.ndarray) -> list[str]:
    if want.dtype == object or want.dtype.kind in "US":
        expected = np.asarray(want).astype(str)
        actual = np.array(got, dtype=object).astype(str)
        if actual.shape != expected.shape or not np.array_equal(actual, expected):
            return [f"output {name}: strings differ"]
        return []
    actual = np.asarray(got)
    if actual.shape != want.shape:
        return [f"output {name} shaped {list(actual.shape)}, expected {list(want.shape)}"]
    if want.dtype.kind == "f":
        if not np.allclose(actual.astype(np.float64), want.astype(np.float64), rtol=FLOAT_RTOL, atol=FLOAT_ATOL):
            worst = float(np.max(np.abs(actual - want)))
            return [f"output {name}: floats differ by up to {worst:.3g}"]
        return []
    if not np.array_equal(actual, want):
        return [f"output {name}: values differ"]
    return []


def _compare_maps(name: str, got: Any, want: list[dict[str, Any]]) -> list[str]:
    if not isinstance(got, list) or len(got) != len(want):
        return [
            f"output {name}: {len(got) if isinstance(got, list) else type(got).__name__} maps, expected {len(want)}"
        ]
    for row_got, row_want in zip(got, want, strict=True):
        if set(row_got) != set(row_want):
            return [f"output {name}: map keys {sorted(row_got)} != {sorted(row_want)}"]
        for key, value in row_want.items():
            if not np.isclose(float(row_got[key]), float(value), rtol=FLOAT_RTOL, atol=FLOAT_ATOL):
                return [f"output {name}[{key}]: {row_got[key]} != {value}"]
    return []
