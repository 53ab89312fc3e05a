"""One contender of bench/handler.py's warm test in a process of its own, as a Lambda execution environment
runs one handler: it loads the bundle's model with lambdafit's session settings, builds its handler (a peer
is given that same session), then answers the parent's "N" lines on stdin with N timed calls, in ms, as a
JSON list on one line. The handlers' own output (EMF lines) goes to a buffer, as cheap as stdout is in Lambda.

    python bench/handler_worker.py CONTENDER BUNDLE EVENT_JSON [WARMUP_CALLS]
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import itertools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PEERS = Path(__file__).resolve().parent / "peers"
sys.path.insert(0, str(ROOT))

from handlers.app import serve  # noqa: E402
from handlers.contract import RuntimeSettings  # noqa: E402
from handlers.runtime import load_service  # noqa: E402

PEER_FILES = {
    "minimal handler": "minimal_handler.py",
    "same answer, flat": "same_answer_handler.py",
    "FastAPI + Mangum": "fastapi_app.py",
}


class Context:
    """Lambda's context: a new request id per invocation (lambdafit puts it on its log keys)."""

    _ids = itertools.count()
    function_name = "bench"
    function_version = "$LATEST"
    memory_limit_in_mb = 1769
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"

    @property
    def aws_request_id(self) -> str:
        return f"request-{next(self._ids)}"


def contender(label: str, bundle: Path, event: dict[str, Any]) -> Callable[[], Any]:
    model_dir = bundle / "function" / "model"
    settings = RuntimeSettings(model_dir=model_dir, metrics=True, service=bundle.name)
    service = load_service(settings)
    assert service.runtime is not None, service.failure
    session = service.runtime.session
    context = Context()
    if label == "raw session.run":
        spec = service.runtime.manifest.inputs[0]
        feed = {spec.name: np.asarray(json.loads(event["body"])["inputs"], dtype=spec.dtype)}
        return lambda: session.run(None, feed)
    if label == "lambdafit":
        handler = serve(service, settings)
    else:
        os.environ["MANIFEST"] = str(model_dir / "manifest.json")
        handler = load_peer(PEERS / PEER_FILES[label], model_dir / "model.onnx", session)
    return lambda: handler(event, context)


def load_peer(path: Path, model: Path, session: Any) -> Callable[[dict[str, Any], Any], Any]:
    """Import a peer's module with the bundle's model, then give it lambdafit's session (same settings)."""
    os.environ["MODEL"] = str(model)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.session = session
    return module.handler  # type: ignore[no-any-return]


def main() -> None:
    label, bundle, event_file = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    replies = sys.stdout
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        call = contender(label, bundle, json.loads(event_file.read_text()))
        for _ in range(int(sys.argv[4]) if len(sys.argv) > 4 else 200):
            call()
    replies.write("ready\n")
    replies.flush()
    for line in sys.stdin:
        times = []
        with contextlib.redirect_stdout(sink):
            for _ in range(int(line)):
                start = time.perf_counter()
                call()
                times.append((time.perf_counter() - start) * 1000)
        sink.seek(0)
        sink.truncate()
        replies.write(json.dumps(times) + "\n")
        replies.flush()


if __name__ == "__main__":
    main()
