"""The one structured logger (powertools: JSON lines with request id and cold-start flag)."""

from __future__ import annotations

from aws_lambda_powertools.logging import Logger

logger = Logger(service="lambdafit", use_rfc3339=True)
