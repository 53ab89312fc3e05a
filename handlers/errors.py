"""The handler's error family: each maps to one HTTP status and a machine-readable code."""

from __future__ import annotations


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


class ModelNotReadyError(ServiceError):
    status = 503
    code = "model_not_ready"


class ManifestError(Exception):
    """The bundle's manifest or model file is missing, malformed or does not match."""
