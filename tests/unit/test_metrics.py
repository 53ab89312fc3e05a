"""EMF metrics: one JSON line per invocation on stdout, which CloudWatch turns into metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
from aws_lambda_powertools.metrics import Metrics

from handlers.app import Endpoint, dispatch
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


def test_each_invocation_prints_emf_with_latency_and_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    metrics = Metrics(namespace="lambdafit")
    endpoint = Endpoint(Service(runtime=FakeRuntime()), metrics)  # type: ignore[arg-type]

    @metrics.log_metrics
    def handler(event: dict[str, object], context: object) -> dict[str, object]:
        return dispatch(endpoint, event)

    assert handler(load_event("predict-rest.json"), None)["statusCode"] == 200
    assert handler(load_event("wrong-shape-rest.json"), None)["statusCode"] == 400
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert len(lines) == 3  # the request's metrics twice, and the error counted by code on its own line
    assert lines[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "lambdafit"
    assert len(lines[0]["InferenceLatency"]) == 1 and lines[0]["InferenceLatency"][0] >= 0
    by_code = next(line for line in lines if "code" in line)
    assert by_code["code"] == "wrong_shape" and by_code["Errors"] == [1.0]
    assert by_code["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["code"]]
    assert lines[-1]["ClientErrors"] == [1.0]
