"""A text-generation bundle in the Lambda container, through the real SAM CLI (offline harness): the image
runs the bundle's own runtime loop (ENTRYPOINT python3 -m handlers.bootstrap) under the Runtime Interface
Emulator, and the zip its exec wrapper. `sam local` buffers, so the loop answers buffered there
(AWS_SAM_LOCAL); the streamed wire format is tested against a Runtime API stand-in in
tests/functional/test_generation.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from handlers.contract import ApiKind
from packager.config import PackageType
from tests.conftest import pack_decoder
from tests.integration.conftest import Sam

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def built(sam: Sam, decoder: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sam-gen")
    bundles = {
        "image-rest": pack_decoder(decoder, root / "image"),
        "zip-url": pack_decoder(decoder, root / "zip", package_type=PackageType.ZIP, api=ApiKind.FUNCTION_URL),
    }
    out = {}
    for kind, bundle in bundles.items():
        work = root / "work" / kind
        shutil.copytree(bundle, work)
        result = sam.run("build", "-t", "template.yaml", cwd=work, timeout=1200)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        out[kind] = work
    return out


@pytest.mark.parametrize(("kind", "api"), [("image-rest", "rest"), ("zip-url", "url")])
def test_sam_local_invoke_answers_chat_streamed_and_not(sam: Sam, built: dict[str, Path], kind: str, api: str) -> None:
    work = built[kind]
    for name in ("chat", "chat-stream", "completion", "models"):
        result = sam.run("local", "invoke", "-e", f"events/{name}-{api}.json", "--skip-pull-image", "TinyFunction",
                         cwd=work, timeout=600)  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        answer = json.loads(result.stdout.strip().splitlines()[-1])
        assert answer["statusCode"] == 200, answer
        if name == "chat-stream":
            assert answer["headers"]["Content-Type"] == "text/event-stream"
            assert answer["body"].endswith("data: [DONE]\n\n")
        elif name == "models":
            assert json.loads(answer["body"])["data"][0]["id"] == "tiny"
        else:
            assert json.loads(answer["body"])["usage"]["completion_tokens"] > 0
