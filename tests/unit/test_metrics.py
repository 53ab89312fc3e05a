"""EMF metrics: one JSON line per invocation on stdout, which CloudWatch turns into metrics."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from handlers.app import serve
from handlers.contract import RuntimeSettings
from handlers.manifest import Manifest, TensorSpec
from handlers.runtime import Service
from handlers.tensors import decode_inputs
from tests.conftest import load_event


class FakeRuntime:
    """A stand-in session: the unit tier has no model file (functional tests use real onnxruntime)."""

    manifest = Manifest(
        name="digits", version="v", sha256="0" * 64,
        inputs=(TensorSpec("x", "float32", ("batch", 64)),), outputs=(TensorSpec("logits", "float32", ("batch", 10)),),
    )  # fmt: skip

    def decode(self, payload: object) -> dict[str, np.ndarray]:
        return decode_inputs(payload, self.manifest)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"logits": np.zeros((len(inputs["x"]), 10), dtype=np.float32)}


def test_each_invocation_writes_one_emf_line_and_errors_their_own(capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    settings = RuntimeSettings(service="digits", metrics=True)
    handler = serve(Service(runtime=FakeRuntime()), settings, load_ms=12.5, metrics_out=out)  # type: ignore[arg-type]

    class Context:
        aws_request_id, function_version = "r1", "4"

    assert handler(load_event("predict-rest.json"), Context())["statusCode"] == 200
    assert handler(load_event("wrong-shape-rest.json"), Context())["statusCode"] == 400
    first, by_code, second = (json.loads(line) for line in out.getvalue().splitlines())
    for line in (first, second):
        [directive] = line["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "lambdafit" and directive["Dimensions"] == [["service"]]
        assert line["service"] == "digits" and line["Requests"] == 1
        assert {m["Name"] for m in directive["Metrics"]} <= set(line)  # every declared metric has a value
    assert first["InferenceLatency"] >= 0 and first["ColdStart"] == 1 and first["ModelLoadTime"] == 12.5
    assert "ColdStart" not in second and second["ClientErrors"] == 1 and "InferenceLatency" not in second
    assert by_code["code"] == "wrong_shape" and by_code["Errors"] == 1 and by_code["service"] == "digits"
    assert by_code["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service", "code"]]
    assert '"_aws"' not in capsys.readouterr().out  # every metric went to the function's metrics stream


def test_disabled_metrics_write_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    handler = serve(Service(runtime=FakeRuntime()), RuntimeSettings(metrics=False), metrics_out=out)  # type: ignore[arg-type]
    handler(load_event("wrong-shape-rest.json"), None)
    assert out.getvalue() == "" and '"_aws"' not in capsys.readouterr().out
