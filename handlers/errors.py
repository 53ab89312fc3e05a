"""The handler's error family: each maps to one HTTP status and a machine-readable code."""

from __future__ import annotations

import re


class ServiceError(Exception):
    """A failure the endpoint reports as `{"error": message, "code": code}` with `status`."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def to_body(self) -> dict[str, str]:
        return {"error": self.message, "code": self.code}


class BadRequestError(ServiceError):
    status = 400
    code = "bad_request"


class NotFoundError(ServiceError):
    status = 404
    code = "not_found"


class MethodNotAllowedError(ServiceError):
    status = 405
    code = "method_not_allowed"


class PayloadTooLargeError(ServiceError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaTypeError(ServiceError):
    status = 415
    code = "unsupported_media_type"


class UnprocessableError(ServiceError):
    """Well-formed, but not something this model can take (a token id outside its vocabulary)."""

    status = 422
    code = "unprocessable"


class ModelNotReadyError(ServiceError):
    status = 503
    code = "model_not_ready"


class ManifestError(Exception):
    """The bundle's manifest or model file is missing, malformed or does not match.

    `kind` is what callers may be told (never a path, bucket or key: those go to the logs)."""

    def __init__(self, message: str, kind: str = "invalid_bundle") -> None:
        super().__init__(message)
        self.kind = kind


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def plain(text: str) -> str:
    """`text` without terminal colour codes."""
    return _ANSI.sub("", text)


_ORT_SOURCE = re.compile(r"/onnxruntime_src/\S+:\d+ .*?[)>](?: const)?(?: \[with [^\]]*\])?\s+(?=[A-Z])")
"""Where in onnxruntime's C++ sources an error was raised, with the function's whole signature."""


def reason(error: BaseException) -> str:
    """An exception as one plain line: its first non-empty line without terminal colour codes (nor
    onnxruntime's C++ source locations), or its type when it has no message."""
    for line in plain(str(error)).splitlines():
        if line.strip():
            return _ORT_SOURCE.sub("", line.strip())
    return type(error).__name__
