"""`lambdafit deploy`, `delete` and `logs`: thin layers over `sam build`, `sam deploy`, `sam delete` and
`sam logs` run in the bundle (whose samconfig.toml and template they use), never a re-implementation.

After a deploy, the stack's outputs (`sam list stack-outputs`) become the bundle's deployment.json: the
endpoint, region, front door and auth that `lambdafit invoke` needs. This module is its one writer and
reader. SAM talks to whatever endpoint the AWS SDK is configured with (AWS_ENDPOINT_URL included), so the
same commands run against a local moto_server; `pretranslate` runs the SAM transform here, with
aws-sam-translator, for endpoints that do not run CloudFormation transforms themselves (moto).
"""

from __future__ import annotations

import itertools
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from handlers.contract import DEPLOYMENT_FILE, ApiKind
from packager.bundle import read_app
from packager.config import Auth
from packager.errors import LambdafitError

ENV_SAM = "LAMBDAFIT_SAM"
"""The SAM CLI command line, e.g. `python ../shared/lambda-emulation/sam-hostnet` (default: `sam`)."""
BUILD_DIR = ".aws-sam"
PACKAGED = f"{BUILD_DIR}/packaged.yaml"
TRANSLATED = f"{BUILD_DIR}/translated.json"


class DeployError(LambdafitError):
    """A SAM step failed (its own output, above, says why) or the stack's outputs are missing."""


@dataclass(frozen=True)
class Deployment:
    stack_name: str
    region: str
    api: ApiKind
    auth: Auth
    endpoint: str | None
    """Base URL of the API (`POST {endpoint}predict`), or None when the stack did not resolve one."""
    function_name: str | None
    outputs: dict[str, str] = field(default_factory=dict)
    aws_endpoint_url: str | None = None
    """The AWS_ENDPOINT_URL in force at deploy time (a local emulator), None for AWS itself."""
    deployed_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"api": self.api.value, "auth": self.auth.value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Deployment:
        return cls(**(dict(data) | {"api": ApiKind(data["api"]), "auth": Auth(data["auth"])}))


def write_deployment(bundle: Path, deployment: Deployment) -> None:
    path = bundle / DEPLOYMENT_FILE
    staging = path.with_suffix(".json.partial")
    staging.write_text(json.dumps(deployment.to_dict(), indent=2) + "\n", encoding="utf-8")
    staging.replace(path)


def read_deployment(bundle: Path) -> Deployment | None:
    path = bundle / DEPLOYMENT_FILE
    if not path.is_file():
        return None
    try:
        return Deployment.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LambdafitError(f"{path} is damaged ({exc}); deploy again, or delete the file") from exc


def sam_command(environ: Mapping[str, str] = os.environ) -> list[str]:
    if environ.get(ENV_SAM):
        return shlex.split(environ[ENV_SAM])
    beside = Path(sys.executable).parent / "sam"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("sam")
    if found is None:
        raise LambdafitError(f"the AWS SAM CLI is not installed: pip install aws-sam-cli, or set {ENV_SAM}")
    return [found]


@dataclass
class Sam:
    """Runs SAM CLI commands in a bundle: their output goes straight to the user's terminal."""

    command: list[str] = field(default_factory=sam_command)
    env: Mapping[str, str] | None = None
    ran: list[list[str]] = field(default_factory=list)

    def run(self, *args: str, cwd: Path) -> None:
        self.ran.append(list(args))
        result = subprocess.run([*self.command, *args], cwd=cwd, env=self._env(), check=False)
        if result.returncode != 0:
            raise DeployError(f"sam {_name(args)} failed (exit {result.returncode}); its output above says why")

    def output(self, *args: str, cwd: Path) -> str:
        self.ran.append(list(args))
        result = subprocess.run(
            [*self.command, *args], cwd=cwd, env=self._env(), capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise DeployError(
                f"sam {' '.join(args[:3])} failed (exit {result.returncode}): {result.stderr.strip()[-600:]}"
            )
        return result.stdout

    def _env(self) -> dict[str, str]:
        return dict(self.env if self.env is not None else os.environ) | {"SAM_CLI_TELEMETRY": "0"}


def _name(args: Sequence[str]) -> str:
    """The SAM command without its options: `deploy`, `list stack-outputs`."""
    return " ".join(itertools.takewhile(lambda arg: not arg.startswith("-"), args))


def _where(region: str | None, profile: str | None) -> list[str]:
    return [*(["--region", region] if region else []), *(["--profile", profile] if profile else [])]


def resolve_region(region: str | None, profile: str | None) -> str:
    if region:
        return region
    import botocore.session

    found = botocore.session.Session(profile=profile).get_config_variable("region") or os.environ.get("AWS_REGION")
    if not found:
        raise LambdafitError(
            "no AWS region: give --region, or set AWS_REGION / AWS_DEFAULT_REGION or a profile's region"
        )
    return str(found)


def deploy(
    bundle: Path,
    *,
    stack_name: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    guided: bool = False,
    confirm: bool = True,
    pretranslate: bool = False,
    extra: Sequence[str] = (),
    sam: Sam | None = None,
) -> Deployment:
    """sam build, sam deploy (with the bundle's samconfig.toml), then the stack's outputs, kept."""
    sam = sam or Sam()
    app = read_app(bundle)
    stack = stack_name or app.name
    region = resolve_region(region, profile)
    where = _where(region, profile)
    confirming = [] if confirm else ["--no-confirm-changeset"]
    sam.run("build", *where, cwd=bundle)
    if pretranslate:
        sam.run("package", "--resolve-s3", "--output-template-file", PACKAGED, *where, cwd=bundle)
        translate(bundle / PACKAGED, bundle / TRANSLATED, region)
        sam.run("deploy", "--template-file", TRANSLATED, "--stack-name", stack, "--resolve-s3",
                "--capabilities", "CAPABILITY_IAM", "--no-fail-on-empty-changeset", *confirming, *where, *extra,
                cwd=bundle)  # fmt: skip
    else:
        sam.run("deploy", "--stack-name", stack, "--no-fail-on-empty-changeset", *(["--guided"] if guided else []),
                *confirming, *where, *extra, cwd=bundle)  # fmt: skip
    outputs = stack_outputs(sam, stack, where, bundle)
    endpoint = outputs.get("Endpoint")
    deployment = Deployment(
        stack_name=stack,
        region=region,
        api=app.api,
        auth=app.auth,
        endpoint=endpoint if endpoint and "${" not in endpoint else None,
        function_name=outputs.get("FunctionName"),
        outputs=outputs,
        aws_endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
        deployed_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    write_deployment(bundle, deployment)
    return deployment


def stack_outputs(sam: Sam, stack: str, where: list[str], cwd: Path) -> dict[str, str]:
    text = sam.output("list", "stack-outputs", "--stack-name", stack, "--output", "json", *where, cwd=cwd)
    try:
        return {str(item["OutputKey"]): str(item["OutputValue"]) for item in json.loads(text)}
    except (ValueError, KeyError, TypeError) as exc:
        raise DeployError(f"sam list stack-outputs gave no outputs for {stack}: {text.strip()[:300]}") from exc


def translate(packaged: Path, target: Path, region: str) -> None:
    """The SAM transform, run here with aws-sam-translator (what CloudFormation runs in AWS) and its
    bundled managed-policy map, so no IAM call is made."""
    from samtranslator.internal.managed_policies import get_bundled_managed_policy_map
    from samtranslator.public.exceptions import InvalidDocumentException
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    class BundledPolicies:
        def load(self) -> dict[str, str]:
            return dict(get_bundled_managed_policy_map("aws"))

    previous = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = region  # the translator reads the region from the environment
    try:
        document = transform(yaml_parse(packaged.read_text(encoding="utf-8")), {}, BundledPolicies())
    except InvalidDocumentException as exc:
        causes = "; ".join(str(cause) for cause in exc.causes)
        raise DeployError(f"the SAM transform refused {packaged}: {causes}") from exc
    finally:
        if previous is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = previous
    target.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")


def delete(
    bundle: Path, *, region: str | None = None, profile: str | None = None, confirm: bool = True, sam: Sam | None = None
) -> str:
    """sam delete of the bundle's stack; forgets the deployment. Returns the stack's name."""
    sam = sam or Sam()
    deployment = read_deployment(bundle)
    stack = deployment.stack_name if deployment else read_app(bundle).name
    region = region or (deployment.region if deployment else None)
    sam.run(
        "delete", "--stack-name", stack, *([] if confirm else ["--no-prompts"]), *_where(region, profile), cwd=bundle
    )
    (bundle / DEPLOYMENT_FILE).unlink(missing_ok=True)
    return stack


def logs(
    bundle: Path,
    *,
    tail: bool = False,
    since: str | None = None,
    filter_pattern: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    sam: Sam | None = None,
) -> None:
    """sam logs of the bundle's function, found through its stack."""
    sam = sam or Sam()
    app = read_app(bundle)
    deployment = read_deployment(bundle)
    stack = deployment.stack_name if deployment else app.name
    region = region or (deployment.region if deployment else None)
    options = [*(["--tail"] if tail else []), *(["--start-time", since] if since else []),
               *(["--filter", filter_pattern] if filter_pattern else [])]  # fmt: skip
    sam.run("logs", "--stack-name", stack, "--name", app.logical_id, *options, *_where(region, profile), cwd=bundle)
