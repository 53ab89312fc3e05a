"""The function's metrics, in CloudWatch's embedded metric format (EMF), each line written from one
string template: per request, Requests, InferenceLatency and ClientErrors by service (and ColdStart and
ModelLoadTime on the first invocation); per error, its own line by service and code, and a 5xx by
service and function version, which the canary's rollback alarm watches (handlers.contract names them).
Building the per-request line through powertools' Metrics costs ~40 µs, more than the rest of a small
model's request path, and adds a `service` dimension only when an environment variable is set; here
every dimension set is fixed, so the alarms the template renders match what the function writes.
"""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO

from handlers.contract import DIMENSION_SERVICE


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
            f'"Dimensions":[["{DIMENSION_SERVICE}"]],"Metrics":[{",".join(names)}]}}]}},"{DIMENSION_SERVICE}":{self._service},'
            f"{','.join(values)}}}\n"
        )
        (self.out or sys.stdout).write(line)

    def single(self, name: str, dimension: str, value: str) -> None:
        """One count on its own line, by service and one more dimension (a rare event: an error)."""
        if not self.enabled:
            return
        line = (
            f'{{"_aws":{{"Timestamp":{int(time.time() * 1000)},"CloudWatchMetrics":[{{"Namespace":{self._head},'
            f'"Dimensions":[["{DIMENSION_SERVICE}",{json.dumps(dimension)}]],"Metrics":[{{"Name":{json.dumps(name)},'
            f'"Unit":"Count"}}]}}]}},"{DIMENSION_SERVICE}":{self._service},{json.dumps(dimension)}:{json.dumps(value)},'
            f"{json.dumps(name)}:1}}\n"
        )
        (self.out or sys.stdout).write(line)
