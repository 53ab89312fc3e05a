"""`pack --model-store s3://bucket/prefix`: the weights go to S3, the function fetches them at init."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from handlers.manifest import Manifest
from packager.errors import LambdafitError


def model_key(store: str, manifest: Manifest) -> tuple[str, str]:
    parsed = urlparse(store)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise LambdafitError(f"--model-store {store!r} must look like s3://bucket/prefix")
    prefix = parsed.path.strip("/")
    key = "/".join(part for part in (prefix, manifest.name, manifest.sha256, "model.onnx") if part)
    return parsed.netloc, key


def upload(store: str, model: Path, manifest: Manifest) -> str:
    """Upload the model and its manifest under a content-addressed key; returns the model's s3:// URI."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = model_key(store, manifest)
    client = boto3.client("s3")
    try:
        client.upload_file(str(model), bucket, key)
        client.put_object(Bucket=bucket, Key=key.rsplit("/", 1)[0] + "/manifest.json", Body=manifest.dumps().encode())
    except (BotoCoreError, ClientError) as exc:
        raise LambdafitError(f"could not upload the model to s3://{bucket}/{key}: {exc}") from exc
    return f"s3://{bucket}/{key}"
