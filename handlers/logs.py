"""The one structured logger: powertools' Logger (JSON lines with the service, the request id and the
cold-start flag), created when the function first writes a line at its log level.

Importing powertools costs a cold start 17-29 ms on a 150 ms budget (it loads its logging, metrics and
tracing packages, jmespath and typing_extensions), and a healthy function at INFO writes no line before
its first answer: the load's timings travel in the first request's metrics line (ModelLoadTime). So the
import waits for the first line that will be written. Keys appended before then are kept and applied;
the level is powertools' own (AWS_LAMBDA_LOG_LEVEL, POWERTOOLS_LOG_LEVEL, LOG_LEVEL, else INFO), read
here only to decide whether a line can be written at all: when in doubt, powertools decides.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aws_lambda_powertools.logging import Logger

LEVELS = {"DEBUG": 10, "INFO": 20, "WARN": 30, "WARNING": 30, "ERROR": 40, "CRITICAL": 50, "FATAL": 50}
LEVEL_VARIABLES = ("AWS_LAMBDA_LOG_LEVEL", "POWERTOOLS_LOG_LEVEL", "LOG_LEVEL")


def lowest_level(environ: Mapping[str, str] = os.environ) -> int:
    """The most verbose level any of powertools' variables asks for (INFO when none is set; an unknown
    name counts as DEBUG), so a line powertools would write is never dropped here."""
    levels = [LEVELS.get(environ[name].strip().upper(), 0) for name in LEVEL_VARIABLES if environ.get(name)]
    return min(levels) if levels else LEVELS["INFO"]


class LazyLogger:
    """The subset of powertools' Logger the handlers use, forwarding to one created on first need."""

    def __init__(self, service: str) -> None:
        self.service = service
        self._logger: Logger | None = None
        self._keys: dict[str, Any] = {}

    @property
    def powertools(self) -> Logger:
        """The powertools Logger itself (imported and created on the first call)."""
        if self._logger is None:
            from aws_lambda_powertools.logging import Logger

            self._logger = Logger(service=self.service, use_rfc3339=True)
            if self._keys:
                self._logger.append_keys(**self._keys)
                self._keys = {}
        return self._logger

    def append_keys(self, **keys: Any) -> None:
        if self._logger is None:
            self._keys.update(keys)
        else:
            self._logger.append_keys(**keys)

    def debug(self, message: str, **kwargs: Any) -> None:
        if lowest_level() <= LEVELS["DEBUG"]:
            self.powertools.debug(message, stacklevel=3, **kwargs)

    def info(self, message: str, **kwargs: Any) -> None:
        if lowest_level() <= LEVELS["INFO"]:
            self.powertools.info(message, stacklevel=3, **kwargs)

    def warning(self, message: str, **kwargs: Any) -> None:
        if lowest_level() <= LEVELS["WARNING"]:
            self.powertools.warning(message, stacklevel=3, **kwargs)

    def error(self, message: str, **kwargs: Any) -> None:
        self.powertools.error(message, stacklevel=3, **kwargs)

    def exception(self, message: str, **kwargs: Any) -> None:
        self.powertools.exception(message, stacklevel=3, **kwargs)


logger = LazyLogger(service="lambdafit")
