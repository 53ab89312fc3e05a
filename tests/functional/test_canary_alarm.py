"""#10 class 6: the canary's rollback alarm sees what users see.

A version whose model cannot load answers every request 503, which is a successful invocation to
Lambda (AWS/Lambda Errors stays at 0). The handler counts its 5xx answers in EMF; here its real EMF
lines go into moto's CloudWatch the way CloudWatch's EMF ingestion would (one datum per metric and
dimension set), and the alarm's own namespace, metric and dimensions, read off the translated
template, reach its threshold for that version and not for the healthy one. (moto evaluates no
alarms, so the threshold is applied here, as the alarm's statistic over its period.)
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from handlers.contract import MODEL_DIR, RuntimeSettings
from packager.bundle import read_app
from packager.emulator import LambdaContext
from packager.template import render_template
from tests.conftest import handler_for, load_event
from tests.functional.test_template_matrix import env, translate

NEW, OLD = "7", "6"


def emf_to_metric_data(line: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(namespace, MetricDatum) for every metric of one EMF log line, once per dimension set."""
    data = []
    stamp = datetime.fromtimestamp(line["_aws"]["Timestamp"] / 1000, tz=UTC)
    for directive in line["_aws"]["CloudWatchMetrics"]:
        for dimension_set in directive["Dimensions"]:
            dimensions = [{"Name": name, "Value": str(line[name])} for name in dimension_set]
            for metric in directive["Metrics"]:
                values = line[metric["Name"]]
                for value in values if isinstance(values, list) else [values]:
                    datum = {"MetricName": metric["Name"], "Dimensions": dimensions, "Value": float(value),
                             "Unit": metric.get("Unit", "None"), "Timestamp": stamp}  # fmt: skip
                    data.append((directive["Namespace"], datum))
    return data


def resolve(value: Any, version_resource: str, version: str) -> Any:
    """The alarm's properties as CloudFormation resolves them for a deployment that published `version`."""
    if value == {"Fn::GetAtt": [version_resource, "Version"]}:
        return version
    if value == {"Ref": "DigitsFunction"}:
        return "digits-function"
    if value == {"Fn::Sub": "${DigitsFunction}:live"}:
        return "digits-function:live"
    if isinstance(value, dict):
        return {k: resolve(v, version_resource, version) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, version_resource, version) for v in value]
    return value


def breaches(cloudwatch: Any, alarm: dict[str, Any], end: datetime) -> tuple[bool, list[float]]:
    sums = cloudwatch.get_metric_statistics(
        Namespace=alarm["Namespace"], MetricName=alarm["MetricName"], Dimensions=alarm["Dimensions"],
        StartTime=end - timedelta(seconds=alarm["Period"] * alarm["EvaluationPeriods"]), EndTime=end,
        Period=alarm["Period"], Statistics=[alarm["Statistic"]],
    )["Datapoints"]  # fmt: skip
    values = [point[alarm["Statistic"]] for point in sums]
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    return any(value >= alarm["Threshold"] for value in values), values


def test_class6_a_version_whose_model_cannot_load_trips_the_rollback_alarm_metric(
    digits_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    app = read_app(digits_bundle)
    for name, value in app.settings.to_env().items():  # the environment the template gives the function
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    for name, value in env().items():
        if name.startswith("AWS_") and name != "AWS_ENDPOINT_URL":
            monkeypatch.setenv(name, value)
    broken = tmp_path / MODEL_DIR
    shutil.copytree(digits_bundle / "function" / MODEL_DIR, broken)
    (broken / "model.onnx").write_bytes(b"not the model the manifest names")
    settings = RuntimeSettings.from_env(app.settings.to_env())
    healthy = handler_for(
        digits_bundle / "function" / MODEL_DIR, service=settings.service, namespace=settings.namespace
    )
    failing = handler_for(broken, service=settings.service, namespace=settings.namespace)
    capsys.readouterr()
    statuses = {
        version: [
            handler(load_event("predict-rest.json"), LambdaContext(function_name="digits", function_version=version))[
                "statusCode"
            ]
            for _ in range(5)
        ]
        for version, handler in ((NEW, failing), (OLD, healthy))
    }
    assert statuses == {NEW: [503] * 5, OLD: [200] * 5}
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    with mock_aws():
        template = translate(render_template(app))
        resources = template["Resources"]
        [version_resource] = [k for k, r in resources.items() if r["Type"] == "AWS::Lambda::Version"]
        cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
        for namespace, datum in (pair for line in lines for pair in emf_to_metric_data(line)):
            cloudwatch.put_metric_data(Namespace=namespace, MetricData=[datum])
        end = datetime.now(tz=UTC) + timedelta(seconds=1)
        alarm = resources["DigitsServerErrorsAlarm"]["Properties"]
        tripped, values = breaches(cloudwatch, resolve(alarm, version_resource, NEW), end)
        assert tripped and sum(values) == 5, (values, [line["_aws"]["CloudWatchMetrics"] for line in lines])
        tripped, values = breaches(cloudwatch, resolve(alarm, version_resource, OLD), end)
        assert not tripped and values == [] and alarm["TreatMissingData"] == "notBreaching"
        errors = resolve(resources["DigitsErrorsAlarm"]["Properties"], version_resource, NEW)
        assert breaches(cloudwatch, errors, end) == (False, [])  # what the old alarm saw: nothing
