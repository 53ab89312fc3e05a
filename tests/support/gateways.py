"""Stand-ins for what sits in front of a deployed function, on loopback: an API Gateway that checks SigV4
signatures with botocore's own signing code (recomputed from the signed headers, as AWS does) or an
API key, then calls the bundle's handler in-process with the event its front door would send."""

from __future__ import annotations

import hmac
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from handlers.contract import ApiKind
from packager.emulator import invoke

AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request, "
    r"SignedHeaders=(?P<signed>[^,]+), Signature=(?P<signature>[0-9a-f]{64})"
)
MAX_SKEW_S = 300


@dataclass
class Gateway:
    handler: Any
    name: str
    api: ApiKind = ApiKind.REST
    secrets: dict[str, str] = field(default_factory=dict)
    """Access key id -> secret key: SigV4 is required when this is not empty."""
    service: str = "execute-api"
    region: str = "us-east-1"
    api_key: str | None = None
    stage: str = ""
    seen: list[dict[str, str]] = field(default_factory=list)

    def check(self, method: str, path: str, headers: dict[str, str], body: bytes) -> str | None:
        """Why the request is refused (API Gateway's own words), or None."""
        if self.api_key is not None and not hmac.compare_digest(headers.get("x-api-key", ""), self.api_key):
            return "Forbidden"
        if not self.secrets:
            return None
        match = AUTHORIZATION.fullmatch(headers.get("authorization", ""))
        if match is None:
            return "Missing Authentication Token"
        if match["service"] != self.service or match["region"] != self.region:
            return f"Credential should be scoped to correct service ({self.service}) and region ({self.region})"
        secret = self.secrets.get(match["key"])
        if secret is None:
            return "The security token included in the request is invalid."
        stamp = headers.get("x-amz-date", "")
        when = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        if abs((datetime.now(UTC) - when).total_seconds()) > MAX_SKEW_S:
            return "Signature expired"
        signed = match["signed"].split(";")
        request = AWSRequest(method=method, url=f"http://{headers['host']}{path}", data=body,
                             headers={name: headers[name] for name in signed if name in headers})  # fmt: skip
        request.context["timestamp"] = stamp
        auth = SigV4Auth(Credentials(match["key"], secret), self.service, self.region)
        canonical = auth.canonical_request(request)
        expected = auth.signature(auth.string_to_sign(request, canonical), request)
        if not hmac.compare_digest(expected, match["signature"]):
            return "The request signature we calculated does not match the signature you provided."
        return None


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        gateway = self.server.gateway
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {key.lower(): value for key, value in self.headers.items()}
        gateway.seen.append(headers)
        refusal = gateway.check(self.command, self.path, headers, body)
        if refusal is not None:
            self._reply(403, [("Content-Type", "application/json")], json.dumps({"message": refusal}).encode())
            return
        path, _, query = self.path.partition("?")
        path = path.removeprefix(gateway.stage) or "/"
        status, out, payload = invoke(gateway.handler, gateway.name, self.command, path, query,
                                      dict(self.headers.items()), body, gateway.api)  # fmt: skip
        self._reply(status, out, payload)

    def _reply(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
        self.send_response(status)
        for key, value in headers:
            if key.lower() != "content-length":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _serve

    def log_message(self, format: str, *args: Any) -> None:
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        super().__init__(("127.0.0.1", 0), _Handler)


@contextmanager
def running(gateway: Gateway) -> Iterator[str]:
    """The gateway on an ephemeral loopback port; yields its base URL (with the stage)."""
    server = _Server(gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{gateway.stage}"
    finally:
        server.shutdown()
        server.server_close()
