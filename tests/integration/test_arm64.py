"""arm64 for real: the bundles built for Graviton run under QEMU (the harness's Neoverse N1 CPU model) in
the SAM CLI's Lambda containers, and answer as the same bundle does on x86_64. Slow under emulation, and
only correctness: arm64 latencies here say nothing about Graviton's."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from handlers.app import make_handler
from packager.emulator import LambdaContext, open_bundle
from tests.integration.conftest import Sam
from tests.integration.test_sam import _last_json

pytestmark = pytest.mark.integration
TOLERANCE = {"image": 1e-5, "zip": 1e-3}
"""fp32 kernels agree to float rounding; static int8 runs different integer kernels on each architecture."""


def test_arm64_image_is_an_aarch64_image_from_the_arm64_base(arm64_bundles: dict[str, Path]) -> None:
    bundle = arm64_bundles["image"]
    assert "FROM public.ecr.aws/lambda/python:3.13-arm64" in (bundle / "function" / "Dockerfile").read_text()
    image = "digitsarmimagefunction:python3.13-v1"
    inspect = subprocess.run(["docker", "image", "inspect", image, "-f", "{{.Architecture}}"], capture_output=True,
                             text=True, check=True)  # fmt: skip
    assert inspect.stdout.strip() == "arm64"
    machine = subprocess.run(["docker", "run", "--rm", "--network", "host", "--entrypoint", "python3", image, "-c",
                              "import platform, onnxruntime; print(platform.machine())"],
                             capture_output=True, text=True, timeout=300, check=True)  # fmt: skip
    assert machine.stdout.strip() == "aarch64"


@pytest.mark.parametrize("kind", ["image", "zip"])
def test_arm64_bundle_answers_as_it_does_on_x86_64(sam: Sam, arm64_bundles: dict[str, Path], kind: str) -> None:
    bundle = arm64_bundles[kind]
    function = f"DigitsArm{kind.capitalize()}Function"
    local = make_handler(open_bundle(bundle).settings)
    for name in ("predict-rest.json", "v2-infer-rest.json"):
        event = bundle / "events" / name
        result = sam.run("local", "invoke", "-e", str(event), "--skip-pull-image", function, cwd=bundle, timeout=600)
        answer = _last_json(result.stdout)
        assert answer["statusCode"] == 200, (name, result.stdout[-2000:], result.stderr[-2000:])
        arm = json.loads(str(answer["body"]))
        x86 = json.loads(local(json.loads(event.read_text()), LambdaContext(function_name=function))["body"])
        if name.startswith("predict"):
            np.testing.assert_allclose(arm["outputs"]["logits"], x86["outputs"]["logits"], atol=TOLERANCE[kind])
            assert [p["label"] for p in arm["predictions"]] == [p["label"] for p in x86["predictions"]]
            difference = np.abs(np.array(arm["outputs"]["logits"]) - np.array(x86["outputs"]["logits"])).max()
            print(f"{kind} arm64 vs x86_64: max abs logit difference {difference:.3g}")
        else:
            np.testing.assert_allclose(arm["outputs"][0]["data"], x86["outputs"][0]["data"], atol=TOLERANCE[kind])
    assert "Architectures:\n      - arm64" in (bundle / "template.yaml").read_text()
