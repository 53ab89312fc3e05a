"""The Lambda entry point, `handlers.lambda_function.lambda_handler`.

The model loads at import, during Lambda's init phase. Settings come from the environment:
LAMBDAFIT_MODEL_DIR (default: the `model` folder beside this package), LAMBDAFIT_API
(rest, http or url; default rest), MODEL_URI (s3://bucket/key: fetch the weights from S3 at init) and
LAMBDAFIT_TRACING (true: X-Ray traces through powertools' Tracer; the bundle vendors aws-xray-sdk).
"""

from __future__ import annotations

import os
from pathlib import Path

from handlers.app import ApiKind, make_handler

lambda_handler = make_handler(
    Path(os.environ.get("LAMBDAFIT_MODEL_DIR") or Path(__file__).resolve().parent.parent / "model"),
    ApiKind(os.environ.get("LAMBDAFIT_API") or ApiKind.REST.value),
    model_uri=os.environ.get("MODEL_URI") or None,
    tracing=os.environ.get("LAMBDAFIT_TRACING", "").lower() == "true",
)
