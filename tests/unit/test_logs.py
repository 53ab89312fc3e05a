"""The handlers' logger: powertools' Logger, imported when the first line at the function's level is
written, so a healthy cold start at INFO does not pay for importing powertools (handlers.logs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from handlers.logs import LEVELS, lowest_level

ROOT = Path(__file__).resolve().parents[2]
DIGITS_EVENT = ROOT / "tests" / "events" / "predict-http.json"

SCRIPT = """
import json, sys
from handlers.logs import logger
logger.append_keys(function_request_id="r-1", cold_start=True)
logger.info("an info line", extra={"n": 1})
print(json.dumps({"after_info": "aws_lambda_powertools" in sys.modules}), flush=True)
logger.warning("a warning", extra={"n": 2})
print(json.dumps({"after_warning": "aws_lambda_powertools" in sys.modules}), flush=True)
"""


def run(script: str, **env: str) -> list[dict[str, object]]:
    clean = {
        k: v for k, v in os.environ.items() if k not in ("POWERTOOLS_LOG_LEVEL", "AWS_LAMBDA_LOG_LEVEL", "LOG_LEVEL")
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=clean | env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_powertools_is_imported_for_the_first_line_written_with_the_keys_appended_before() -> None:
    lines = run(SCRIPT, POWERTOOLS_LOG_LEVEL="WARNING")
    assert lines[0] == {"after_info": False}  # below the level: nothing written, nothing imported
    warning = lines[1]
    assert warning["level"] == "WARNING" and warning["message"] == "a warning" and warning["n"] == 2
    assert warning["function_request_id"] == "r-1" and warning["cold_start"] is True
    assert warning["location"].startswith("<module>:")  # the caller's line, not the proxy's
    assert lines[2] == {"after_warning": True}


def test_at_info_the_info_line_is_written() -> None:
    lines = run(SCRIPT)
    assert lines[0]["message"] == "an info line" and lines[0]["level"] == "INFO"
    assert lines[1] == {"after_info": True}


def test_a_healthy_cold_start_and_request_import_no_powertools(tmp_path: Path) -> None:
    """Load the model and answer a request at INFO: no line is due, so powertools stays unimported; at
    DEBUG the load is logged with its timings."""
    model_dir = _digits_model(tmp_path)
    script = f"""
import json, sys
from handlers.app import make_handler
from handlers.contract import RuntimeSettings
from pathlib import Path
handler = make_handler(RuntimeSettings(model_dir=Path({str(model_dir)!r}), metrics=False))
answer = handler(json.loads(open({str(DIGITS_EVENT)!r}).read()), None)
print(json.dumps({{"status": answer["statusCode"], "powertools": "aws_lambda_powertools" in sys.modules}}))
"""
    assert run(script)[-1] == {"status": 200, "powertools": False}
    lines = run(script, POWERTOOLS_LOG_LEVEL="DEBUG")
    loaded = next(line for line in lines if line.get("message") == "model loaded")
    assert loaded["load_ms"] > 0 and "session_ms" in loaded
    assert lines[-1] == {"status": 200, "powertools": True}


def _digits_model(folder: Path) -> Path:
    """A one-layer model over the digits' 64 features, as a bundle's model folder."""
    import numpy as np

    from handlers.manifest import Manifest, TensorSpec, sha256_file
    from tests.conftest import matmul_model

    folder.mkdir(parents=True, exist_ok=True)
    matmul_model(folder / "model.onnx", np.random.default_rng(0).normal(size=(64, 10)).astype(np.float32))
    manifest = Manifest(
        name="digits",
        version="1",
        sha256=sha256_file(folder / "model.onnx"),
        inputs=(TensorSpec("x", "float32", ("batch", 64)),),
        outputs=(TensorSpec("logits", "float32", ("batch", 10)),),
        labels=tuple(str(i) for i in range(10)),
        classifier_output="logits",
    )
    (folder / "manifest.json").write_text(manifest.dumps())
    return folder


@pytest.mark.parametrize(
    ("environ", "level"),
    [
        ({}, LEVELS["INFO"]),
        ({"POWERTOOLS_LOG_LEVEL": "warning"}, LEVELS["WARNING"]),
        ({"POWERTOOLS_LOG_LEVEL": "ERROR", "AWS_LAMBDA_LOG_LEVEL": "DEBUG"}, LEVELS["DEBUG"]),
        ({"LOG_LEVEL": "verbose"}, 0),  # a name powertools may know and this does not: write it
    ],
)
def test_the_level_is_the_most_verbose_any_variable_asks_for(environ: dict[str, str], level: int) -> None:
    assert lowest_level(environ) == level
