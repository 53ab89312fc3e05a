"""`lambdafit invoke`: one request (or `--bench N` of them) to an endpoint, answered readably.

The target is a bundle (its handler runs in this process, through the same event shapes API Gateway
sends), a URL (`lambdafit serve`, `sam local start-api`, a deployed endpoint), or a stack deployed with
`lambdafit deploy` (packager.deploy keeps its endpoint and front door in the bundle). Requests to an
IAM-protected endpoint are signed with SigV4 by botocore, with botocore's credential chain (service
`execute-api` for REST and HTTP APIs, `lambda` for function URLs); `--auth api-key` sends `x-api-key`.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from handlers.contract import SAMPLES_DIR, ApiKind
from packager.config import Auth
from packager.errors import LambdafitError

PREDICT = "/predict"
JSON = "application/json"
API_KEY_HEADER = "x-api-key"
ENV_API_KEY = "LAMBDAFIT_API_KEY"
_AWS_HOST = re.compile(r"^[^.]+\.(execute-api|lambda-url)\.([a-z0-9-]+)\.(amazonaws\.com|on\.aws)$")
MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"))


class InvokeError(LambdafitError):
    """The request could not be sent, or the endpoint refused it; the message says why and what to do."""


@dataclass(frozen=True)
class Payload:
    """What one request sends."""

    body: bytes
    content_type: str
    what: str
    """For the user: `digit.png (image/png, 183 bytes)`."""


def media_of(raw: bytes) -> str:
    """An image by its magic bytes, JSON by its first character, text otherwise."""
    for magic, media in MAGIC:
        if raw.startswith(magic):
            return media
    return JSON if raw.lstrip()[:1] in (b"{", b"[") else "text/plain"


def payload_from(
    *,
    data: Path | None = None,
    image: Path | None = None,
    text: str | None = None,
    stdin: bytes | None = None,
    sample: Path | None = None,
) -> Payload:
    """The body to send: exactly one of --data, --image, --text, stdin, else the bundle's sample request."""
    given = [
        name
        for name, value in (("--data", data), ("--image", image), ("--text", text), ("-", stdin))
        if value is not None
    ]
    if len(given) > 1:
        raise InvokeError(f"give one of --data, --image, --text or - (stdin), not {' and '.join(given)}")
    if image is not None:
        raw = _read(image)
        media = media_of(raw)
        if not media.startswith("image/"):
            raise InvokeError(f"--image {image} is not a PNG or JPEG file")
        return Payload(raw, media, f"{image} ({media}, {len(raw):,} bytes)")
    if text is not None:
        raw = text.encode("utf-8")
        return Payload(raw, "text/plain", f"text ({len(text)} characters)")
    if stdin is not None:
        media = media_of(stdin)
        return Payload(stdin, media, f"stdin ({media}, {len(stdin):,} bytes)")
    if data is not None:
        return _data_file(data)
    if sample is not None and sample.is_file():
        return Payload(_read(sample), JSON, f"the bundle's sample request {sample}")
    raise InvokeError("nothing to send: give --data FILE, --image FILE, --text STR or - (stdin)")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvokeError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _data_file(path: Path) -> Payload:
    """A JSON body as it is (a bare list becomes {"inputs": list}), or the arrays of an .npz as inputs."""
    if path.suffix == ".npz":
        import numpy as np

        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key].tolist() for key in archive.files if key != "labels"}
        inputs: Any = next(iter(arrays.values())) if len(arrays) == 1 else arrays
        raw = json.dumps({"inputs": inputs}).encode()
        return Payload(raw, JSON, f"{path} as inputs ({', '.join(arrays)})")
    raw = _read(path)
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise InvokeError(f"--data {path} is not JSON ({exc}); images go with --image, text with --text") from exc
    if isinstance(body, list):
        raw = json.dumps({"inputs": body}).encode()
    return Payload(raw, JSON, f"{path} ({len(raw):,} bytes of JSON)")


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    seconds: float
    content_type: str = JSON

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class Target(Protocol):
    description: str

    def send(self, method: str, path: str, payload: Payload | None) -> Answer: ...


class BundleTarget:
    """The bundle's own handler in this process, through the event shape of its front door: no network,
    no auth (that is the front door's job)."""

    def __init__(self, bundle: Path) -> None:
        from handlers.app import make_handler
        from packager.emulator import open_bundle

        opened = open_bundle(bundle)
        self.app = opened.app
        self.handler = make_handler(opened.settings)
        self.description = f"{bundle} in this process ({opened.app.api.value} events)"

    def send(self, method: str, path: str, payload: Payload | None) -> Answer:
        from packager.emulator import invoke

        headers = {"Content-Type": payload.content_type} if payload else {}
        start = time.perf_counter()
        status, out_headers, body = invoke(
            self.handler, self.app.name, method, path, "", headers, payload.body if payload else b"", self.app.api
        )
        seconds = time.perf_counter() - start
        media = next((value for key, value in out_headers if key.lower() == "content-type"), JSON)
        return Answer(status, body, seconds, media)


Signer = Callable[[str, str, bytes, dict[str, str]], dict[str, str]]
"""(method, url, body, headers) -> the headers to send."""


@dataclass
class HttpTarget:
    base: str
    """Up to the stage: https://abc.execute-api.us-east-1.amazonaws.com/Prod"""
    signer: Signer | None = None
    api_key: str | None = None
    timeout: float = 60.0
    description: str = ""
    extra_headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.base = self.base.rstrip("/")
        auth = "SigV4" if self.signer else f"{API_KEY_HEADER}" if self.api_key else "no auth"
        self.description = self.description or f"{self.base} ({auth})"

    def send(self, method: str, path: str, payload: Payload | None) -> Answer:
        url = self.base + path
        body = payload.body if payload else b""
        headers = dict(self.extra_headers)
        if payload is not None:
            headers["Content-Type"] = payload.content_type
        if self.api_key:
            headers[API_KEY_HEADER] = self.api_key
        if self.signer is not None:
            headers = self.signer(method, url, body, headers)
        request = urllib.request.Request(url, data=body or None, method=method, headers=headers)
        start = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                data = response.read()
                status, media = response.status, response.headers.get("Content-Type", JSON)
        except urllib.error.HTTPError as error:
            data, status, media = error.read(), error.code, error.headers.get("Content-Type", JSON)
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise InvokeError(f"cannot reach {url}: {reason}. Is the endpoint running (lambdafit serve)?") from None
        return Answer(status, data, time.perf_counter() - start, media)


def sigv4_signer(service: str, region: str, profile: str | None = None) -> Signer:
    """Signs with botocore's SigV4Auth and botocore's credential chain (environment, profile, SSO, IMDS)."""
    import botocore.session
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    session = botocore.session.Session(profile=profile)
    credentials = session.get_credentials()
    if credentials is None:
        raise InvokeError(
            "the endpoint takes IAM (SigV4) auth but botocore found no AWS credentials: set AWS_PROFILE, "
            "run aws configure or aws sso login, or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    frozen = credentials.get_frozen_credentials()

    def sign(method: str, url: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        request = AWSRequest(method=method, url=url, data=body, headers=headers)
        SigV4Auth(frozen, service, region).add_auth(request)
        return dict(request.headers.items())

    return sign


def aws_host(url: str) -> tuple[str, str] | None:
    """(service, region) for an API Gateway or function URL host, None for any other."""
    from urllib.parse import urlsplit

    match = _AWS_HOST.match(urlsplit(url).hostname or "")
    if match is None:
        return None
    return ("lambda" if match.group(1) == "lambda-url" else "execute-api"), match.group(2)


def http_target(
    url: str,
    *,
    auth: Auth | None,
    api: ApiKind | None = None,
    region: str | None = None,
    api_key: str | None = None,
    profile: str | None = None,
    timeout: float = 60.0,
) -> HttpTarget:
    """A URL with its auth: explicit, else IAM for AWS's own hosts (lambdafit's default) and none locally."""
    host = aws_host(url)
    auth = auth or (Auth.IAM if host else Auth.NONE)
    if auth is Auth.IAM:
        service = "lambda" if api is ApiKind.FUNCTION_URL else host[0] if host else "execute-api"
        region = region or (host[1] if host else None) or _default_region(profile)
        return HttpTarget(url, sigv4_signer(service, region, profile), timeout=timeout,
                          description=f"{url.rstrip('/')} (SigV4 {service} {region})")  # fmt: skip
    if auth is Auth.API_KEY:
        if not api_key:
            raise InvokeError(f"the endpoint takes an API key: give --api-key KEY or set {ENV_API_KEY}")
        return HttpTarget(url, api_key=api_key, timeout=timeout)
    return HttpTarget(url, timeout=timeout)


def _default_region(profile: str | None) -> str:
    import botocore.session

    region = botocore.session.Session(profile=profile).get_config_variable("region") or os.environ.get("AWS_REGION")
    if not region:
        raise InvokeError("no AWS region for SigV4: give --region, or set AWS_REGION / AWS_DEFAULT_REGION")
    return str(region)


def sample_of(bundle: Path) -> Path:
    from packager.samples import REQUEST_FILE

    return bundle / SAMPLES_DIR / REQUEST_FILE


@dataclass(frozen=True)
class Bench:
    count: int
    seconds: list[float]
    errors: int

    def percentiles(self) -> dict[str, float]:
        ms = sorted(s * 1000 for s in self.seconds)

        def at(q: float) -> float:
            return ms[min(len(ms) - 1, round(q * (len(ms) - 1)))]

        return {
            "p50_ms": at(0.5),
            "p90_ms": at(0.9),
            "p99_ms": at(0.99),
            "mean_ms": statistics.fmean(ms),
            "min_ms": ms[0],
            "max_ms": ms[-1],
            "requests_per_s": len(ms) / sum(self.seconds),
        }


def bench(target: Target, payload: Payload | None, count: int, path: str = PREDICT) -> Bench:
    """`count` requests one after another after one warm-up request: latency as the client sees it."""
    target.send("POST", path, payload)
    seconds, errors = [], 0
    for _ in range(count):
        answer = target.send("POST", path, payload)
        seconds.append(answer.seconds)
        errors += answer.status >= 400
    return Bench(count, seconds, errors)


def readable(body: Any, max_values: int = 8) -> list[str]:
    """The answer for a person: per row, the best label and score and the runners-up; else each output's
    shape and first values."""
    if not isinstance(body, dict):
        return [json.dumps(body)[:2000]]
    if "error" in body:
        return [f"error ({body.get('code', '?')}): {body['error']}"]
    lines = []
    predictions = body.get("predictions") or []
    for row, prediction in enumerate(predictions):
        if prediction.get("label") is None:
            lines.append(f"row {row}: no prediction (scores not finite)")
            continue
        rest = ", ".join(f"{p['label']} {p['score']:.3f}" for p in prediction.get("top_k", [])[1:])
        lines.append(
            f"row {row}: {prediction['label']}  score {prediction['score']:.3f}" + (f"  (then {rest})" if rest else "")
        )
    for name, value in (body.get("outputs") or {}).items():
        lines.append(f"{name}: {_summary(value, max_values)}")
    for warning in body.get("warnings") or []:
        lines.append(f"warning: {warning}")
    if "model" in body:
        lines.append(f"model {body['model']} version {body.get('version')}")
    return lines


def _summary(value: Any, max_values: int) -> str:
    shape, flat = [], value
    while isinstance(flat, list) and flat and isinstance(flat[0], list):
        shape.append(len(flat))
        flat = flat[0]
    if isinstance(flat, list):
        shape.append(len(flat))
        head = ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in flat[:max_values])
        more = ", ..." if len(flat) > max_values else ""
        return f"shape {shape}, first row [{head}{more}]"
    return json.dumps(value)[:200]


@dataclass(frozen=True)
class TargetOptions:
    auth: Auth | None = None
    """None: the deployment's, else IAM for AWS hosts and none for local URLs."""
    region: str | None = None
    api_key: str | None = None
    profile: str | None = None
    timeout: float = 60.0
    deployed: bool = False
    """A bundle folder means its deployed stack, not its handler in this process."""
    search: Path = Path("build")
    """Where bundles deployed by name are looked for."""


def resolve_target(text: str, options: TargetOptions) -> tuple[Target, Path | None]:
    """The target TEXT names, and the bundle it belongs to (for its sample request), if any."""
    from handlers.contract import BUNDLE_FILE, DEPLOYMENT_FILE
    from packager.deploy import read_deployment

    if text.startswith(("http://", "https://")):
        target = http_target(text, auth=options.auth, region=options.region, api_key=_api_key(options),
                             profile=options.profile, timeout=options.timeout)  # fmt: skip
        return target, None
    path = Path(text)
    if (path / BUNDLE_FILE).is_file():
        if not options.deployed:
            return BundleTarget(path), path
        deployment = read_deployment(path)
        if deployment is None:
            raise InvokeError(f"{path} has not been deployed (no {DEPLOYMENT_FILE}): run lambdafit deploy {path}")
        return deployed_target(deployment, options), path
    for record in sorted(options.search.glob(f"*/{DEPLOYMENT_FILE}")):
        deployment = read_deployment(record.parent)
        if deployment is not None and deployment.stack_name == text:
            return deployed_target(deployment, options), record.parent
    raise InvokeError(
        f"{text!r} is not a URL, a bundle folder, or a stack deployed with lambdafit deploy from {options.search}/"
    )


def deployed_target(deployment: Any, options: TargetOptions) -> HttpTarget:
    """The deployed endpoint with the auth its stack enforces (or the one asked for)."""
    if deployment.endpoint is None:
        where = f" at {deployment.aws_endpoint_url}" if deployment.aws_endpoint_url else ""
        raise InvokeError(
            f"stack {deployment.stack_name} ({deployment.region}{where}) has no resolved Endpoint output "
            f"(outputs: {deployment.outputs}); the front door was not created there"
        )
    auth = options.auth or deployment.auth
    key = _api_key(options)
    if auth is Auth.API_KEY and not key and "ApiKeyId" in deployment.outputs:
        key = _fetch_api_key(deployment.outputs["ApiKeyId"], deployment.region, options.profile)
    return http_target(deployment.endpoint, auth=auth, api=deployment.api, region=options.region or deployment.region,
                       api_key=key, profile=options.profile, timeout=options.timeout)  # fmt: skip


def _api_key(options: TargetOptions) -> str | None:
    return options.api_key or os.environ.get(ENV_API_KEY) or None


def _fetch_api_key(key_id: str, region: str, profile: str | None) -> str:
    """The usage plan's key, read with the caller's credentials (the stack outputs only its id)."""
    import boto3

    try:
        client = boto3.Session(profile_name=profile, region_name=region).client("apigateway")
        return str(client.get_api_key(apiKey=key_id, includeValue=True)["value"])
    except Exception as exc:
        raise InvokeError(f"cannot read API key {key_id} ({exc}); give it with --api-key or {ENV_API_KEY}") from exc
