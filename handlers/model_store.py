"""Fetch the model from S3 at init (MODEL_URI=s3://bucket/key) into /tmp, verified and reused.

The manifest ships with the function; only the weights live in S3. A download lands in a temporary
file, is checked against the manifest's sha256, then renamed into place: a warm or reused sandbox
finds a verified copy and skips the download; a wrong checksum never becomes the served model.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from handlers.contract import DEFAULT_CACHE_DIR, S3Uri
from handlers.errors import ManifestError, reason
from handlers.manifest import sha256_file

MAX_ATTEMPTS = 6
"""botocore's standard retry mode: exponential backoff with jitter on throttling and 5xx."""


def s3_client() -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("s3", config=Config(retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"}))


def fetch(uri: S3Uri, sha256: str, client: Any = None, cache_dir: Path = Path(DEFAULT_CACHE_DIR)) -> Path:
    """The verified local copy of `uri`, downloading it only when no verified copy is there."""
    folder = cache_dir
    target = folder / f"{sha256}.onnx"
    if target.is_file() and sha256_file(target) == sha256:
        return target
    folder.mkdir(parents=True, exist_ok=True)
    client = client or s3_client()
    descriptor, partial = tempfile.mkstemp(dir=folder, prefix=".download-")
    os.close(descriptor)
    try:
        try:
            client.download_file(uri.bucket, uri.key, partial)
        except Exception as exc:
            raise ManifestError(f"could not fetch the model from {uri}: {_reason(exc)}", _kind(exc)) from exc
        if sha256_file(Path(partial)) != sha256:
            raise ManifestError(
                f"the object at {uri} does not match the manifest's sha256: refusing to serve it", "checksum_mismatch"
            )
        os.replace(partial, target)
    finally:
        Path(partial).unlink(missing_ok=True)
    return target


def _kind(exc: Exception) -> str:
    """What a caller may be told about a failed download."""
    code = str((getattr(exc, "response", None) or {}).get("Error", {}).get("Code", ""))
    if code in ("404", "NoSuchKey", "NoSuchBucket", "NotFound"):
        return "model_object_missing"
    if code in ("403", "AccessDenied", "Forbidden"):
        return "model_access_denied"
    return "model_download_failed"


def _reason(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        return f"{error.get('Code', 'error')} {error.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {reason(exc)}"
