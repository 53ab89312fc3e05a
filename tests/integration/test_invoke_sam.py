"""`lambdafit invoke` against `sam local start-api` (the function in its Lambda container, behind SAM's
local HTTP API), and the base-image table against the images Docker really has."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from handlers.contract import ApiKind
from packager.bundle import read_app, write_info
from packager.config import Arch
from packager.size import BASE_IMAGES, STAND_IN
from packager.template import render_template, to_yaml
from tests.functional.conftest import Project, free_port, lambdafit, project, wait_for  # noqa: F401 (the fixture)
from tests.integration.conftest import EMULATION, Sam

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def start_api(sam: Sam, project: Project, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:  # noqa: F811
    """The new user's bundle (zip, image requests) behind a REST API (what pack --api rest writes), after
    `sam build`, under start-api. Not its HTTP API: SAM CLI 1.170's start-api decodes an HTTP API request
    body as UTF-8 (HTTP APIs have no BinaryMediaTypes) and answers a PNG body with 502, which AWS does not."""
    work = tmp_path_factory.mktemp("start-api") / "digits"
    shutil.copytree(project.bundle, work)
    app = dataclasses.replace(read_app(work), api=ApiKind.REST)
    (work / "template.yaml").write_text(to_yaml(render_template(app)))
    write_info(work, app)
    built = sam.run("build", cwd=work)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    port = free_port()
    command = [sys.executable, str(EMULATION / "sam-hostnet"), "local", "start-api", "--skip-pull-image",
               "--warm-containers", "EAGER", "--port", str(port), "--host", "127.0.0.1"]  # fmt: skip
    log = work / "start-api.log"
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=work, env=sam.env | {"SAM_HOSTNET_LOG_WAIT": "0.02"}, stdout=out,
                                   stderr=out, start_new_session=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_for(f"{base}/health", 240)
        except AssertionError:
            raise AssertionError(f"sam local start-api did not answer: {log.read_text()[-3000:]}") from None
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def test_invoke_gets_the_same_answer_from_start_api_as_in_process(start_api: str, project: Project) -> None:  # noqa: F811
    sample = project.bundle / "requests" / "sample.png"
    for args in (["--image", str(sample)], ["--data", str(project.bundle / "requests" / "request.json")]):
        local = lambdafit("invoke", str(project.bundle), *args, "--json", cwd=project.folder)  # HTTP API events
        remote = lambdafit("invoke", start_api, *args, "--json", cwd=project.folder, timeout=120)
        assert remote.returncode == 0, remote.stdout + remote.stderr
        assert json.loads(remote.stdout) == json.loads(local.stdout), args
    bench = lambdafit("invoke", start_api, "--image", str(sample), "--bench", "10", cwd=project.folder, timeout=300)
    assert bench.returncode == 0 and "0 errors" in bench.stdout, bench.stdout + bench.stderr
    print(bench.stdout)


@pytest.mark.parametrize(
    ("python", "arch"), [key for key in BASE_IMAGES if BASE_IMAGES[key].source.startswith(STAND_IN)]
)
def test_measured_base_images_are_what_docker_reports(python: str, arch: Arch) -> None:
    image = BASE_IMAGES[(python, arch)]
    inspected = subprocess.run(
        ["docker", "image", "inspect", f"public.ecr.aws/lambda/python:{image.tag}", "-f", "{{.Size}} {{.Architecture}}"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert int(inspected[0]) == image.bytes
    assert inspected[1] == {Arch.X86_64: "amd64", Arch.ARM64: "arm64"}[arch]
