"""The per-request metrics line, in CloudWatch's embedded metric format (EMF), written with one string
template: Requests, InferenceLatency and ClientErrors by service, and on the first invocation ColdStart
and ModelLoadTime. Building the same line through powertools' Metrics costs ~40 µs a request, more than
the rest of a small model's request path; the rare lines (errors by code, 5xx by function version) go
through powertools' single_metric, imported when first needed.
"""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO


class RequestMetrics:
    def __init__(self, namespace: str, service: str, *, enabled: bool, out: TextIO | None = None) -> None:
        self.enabled = enabled
        self.out = out
        self.namespace = namespace
        self._head = json.dumps(namespace)
        self._service = json.dumps(service)
        self._cold = True

    def emit(self, latency_ms: float | None, client_error: bool, load_ms: float) -> None:
        if not self.enabled:
            return
        names = ['{"Name":"Requests","Unit":"Count"}']
        values = ['"Requests":1']
        if latency_ms is not None:
            names.append('{"Name":"InferenceLatency","Unit":"Milliseconds"}')
            values.append(f'"InferenceLatency":{latency_ms:.3f}')
        if client_error:
            names.append('{"Name":"ClientErrors","Unit":"Count"}')
            values.append('"ClientErrors":1')
        if self._cold:
            self._cold = False
            names += ['{"Name":"ColdStart","Unit":"Count"}', '{"Name":"ModelLoadTime","Unit":"Milliseconds"}']
            values += ['"ColdStart":1', f'"ModelLoadTime":{load_ms:.3f}']
        line = (
            f'{{"_aws":{{"Timestamp":{int(time.time() * 1000)},"CloudWatchMetrics":[{{"Namespace":{self._head},'
            f'"Dimensions":[["service"]],"Metrics":[{",".join(names)}]}}]}},"service":{self._service},'
            f"{','.join(values)}}}\n"
        )
        (self.out or sys.stdout).write(line)

    def single(self, name: str, dimension: str, value: str) -> None:
        """One count with its own dimension (a rare event: an error): powertools' single_metric."""
        if not self.enabled:
            return
        from aws_lambda_powertools.metrics import MetricUnit, single_metric

        with single_metric(name=name, unit=MetricUnit.Count, value=1, namespace=self.namespace) as metric:
            metric.add_dimension(name=dimension, value=value)
