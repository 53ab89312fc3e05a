"""The real AWS SAM CLI and Docker on the generated bundle and the root template."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from handlers.app import ApiKind, make_handler
from packager.emulator import LambdaContext
from tests.conftest import ROOT
from tests.integration.conftest import Sam

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("which", ["root", "bundle"])
def test_sam_validate_lint(sam: Sam, digits_bundle: Path, which: str) -> None:
    folder = ROOT if which == "root" else digits_bundle
    result = sam.run("validate", "--lint", "-t", "template.yaml", cwd=folder, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def _last_json(text: str) -> dict[str, object]:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)  # type: ignore[no-any-return]
    raise AssertionError(f"no JSON response in sam output:\n{text[-2000:]}")


def test_sam_local_invoke_answers_every_bundle_event_like_lambdafit_serve(sam: Sam, built_bundle: Path) -> None:
    local = make_handler(built_bundle / "function" / "model", ApiKind.REST)
    events = sorted((built_bundle / "events").glob("*.json"))
    assert {e.name for e in events} >= {"predict-rest.json", "health-rest.json"}
    for event in events:
        result = sam.run(
            "local",
            "invoke",
            "-e",
            str(event),
            "--skip-pull-image",
            "DigitsFunction",
            cwd=built_bundle,
            timeout=300,
        )
        response = _last_json(result.stdout)
        assert response["statusCode"] == 200, (event.name, result.stdout[-2000:], result.stderr[-2000:])
        expected = local(json.loads(event.read_text()), LambdaContext(function_name="digits"))
        assert json.loads(str(response["body"])) == json.loads(expected["body"]), event.name
