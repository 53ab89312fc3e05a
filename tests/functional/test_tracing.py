"""X-Ray through powertools' Tracer: silent without a daemon, and annotated segments when one listens."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from aws_lambda_powertools.tracing import Tracer

from packager.emulator import LambdaContext
from tests.conftest import handler_for, load_event

TRACE_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


@pytest.fixture
def fresh_tracer() -> Iterator[None]:
    """Tracer and the X-Ray SDK keep process-wide settings; each test starts from none."""
    import aws_xray_sdk

    Tracer._reset_config()
    aws_xray_sdk.global_sdk_config.set_sdk_enabled(True)
    yield
    Tracer._reset_config()
    aws_xray_sdk.global_sdk_config.set_sdk_enabled(True)


def predict(handler: object) -> int:
    result = handler(load_event("predict-rest.json"), LambdaContext(function_name="digits"))  # type: ignore[operator]
    assert json.loads(result["body"])["model"] == "digits"
    return int(result["statusCode"])


def test_outside_lambda_tracing_switches_itself_off(
    fresh_tracer: None, digits_bundle: Path, caplog: pytest.LogCaptureFixture
) -> None:
    handler = handler_for(digits_bundle / "function" / "model", tracing=True)
    with caplog.at_level(logging.WARNING):
        assert predict(handler) == 200
    assert [r for r in caplog.records if r.name.startswith(("aws_xray_sdk", "aws_lambda_powertools"))] == []


def test_in_lambda_segments_go_to_the_daemon_annotated_and_nothing_fails_without_one(
    fresh_tracer: None, digits_bundle: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    daemon.bind(("127.0.0.1", 0))
    daemon.settimeout(5)
    port = daemon.getsockname()[1]
    for name, value in {
        "LAMBDA_TASK_ROOT": str(digits_bundle / "function"), "AWS_LAMBDA_FUNCTION_NAME": "digits",
        "_X_AMZN_TRACE_ID": TRACE_HEADER, "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{port}",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SAM_LOCAL", raising=False)
    from aws_xray_sdk.core import xray_recorder
    from aws_xray_sdk.core.context import Context
    from aws_xray_sdk.core.lambda_launcher import LambdaContext as XRayLambdaContext

    # In Lambda the SDK picks its Lambda context and daemon address at import; this process imported it earlier.
    xray_recorder.configure(context=XRayLambdaContext(), daemon_address=f"127.0.0.1:{port}")
    try:
        handler = handler_for(digits_bundle / "function" / "model", tracing=True)
        with caplog.at_level(logging.WARNING):
            assert predict(handler) == 200
        packet = daemon.recv(65536).decode()
        document = json.loads(packet.split("\n", 1)[1])
        assert document["name"] == "## traced"
        assert document["annotations"]["model"].startswith("digits:")
        assert document["trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"
        daemon.close()
        # the daemon is gone now: the next request still answers, and nothing is logged as an error
        with caplog.at_level(logging.WARNING):
            assert predict(handler) == 200
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    finally:
        daemon.close()
        xray_recorder.configure(context=Context(), daemon_address="127.0.0.1:2000")
