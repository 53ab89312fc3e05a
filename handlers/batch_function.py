"""The batch function's entry point, `handlers.batch_function.lambda_handler` (handlers.contract.BATCH_HANDLER).

The same init as handlers.lambda_function (model loaded at import, SnapStart hooks), serving the events
of SQS, asynchronous invocations and Step Functions Distributed Map (handlers.batch).
"""

from __future__ import annotations

import os
from typing import Any

from handlers import batch, snapstart
from handlers.app import Endpoint, load
from handlers.contract import RuntimeSettings
from handlers.metrics import RequestMetrics

settings = RuntimeSettings.from_env(os.environ)
service, load_ms = load(settings)
hooks = snapstart.register(service, settings.model_dir)
scorer = batch.Scorer(Endpoint(service, RequestMetrics(settings.namespace, settings.service, enabled=settings.metrics)))
sink = batch.ResultSink(settings.results_uri)


def lambda_handler(event: Any, context: Any) -> Any:
    return batch.handle(scorer, sink, event, context)
