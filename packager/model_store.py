"""`pack --model-store s3://bucket/prefix`: the weights go to S3, the function fetches them at init."""

from __future__ import annotations

from pathlib import Path

from handlers.contract import MANIFEST_FILE, MODEL_FILE, S3Uri
from handlers.manifest import Manifest
from packager.errors import LambdafitError


def model_uri(store: S3Uri, manifest: Manifest) -> S3Uri:
    """Content-addressed: NAME/SHA256/model.onnx under the store's prefix."""
    return store.join(manifest.name, manifest.sha256, MODEL_FILE)


def upload(store: S3Uri, model: Path, manifest: Manifest) -> S3Uri:
    """Upload the model and its manifest; returns the model's URI."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    uri = model_uri(store, manifest)
    client = boto3.client("s3")
    try:
        client.upload_file(str(model), uri.bucket, uri.key)
        client.put_object(
            Bucket=uri.bucket, Key=uri.key.rsplit("/", 1)[0] + "/" + MANIFEST_FILE, Body=manifest.dumps().encode()
        )
    except (BotoCoreError, ClientError) as exc:
        raise LambdafitError(f"could not upload the model to {uri}: {exc}") from exc
    return uri
