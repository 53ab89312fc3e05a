"""invoke's and deploy's own logic, without a network or the SAM CLI: what is sent and signed, how an
answer is shown, which sam commands deploy runs (a stand-in `sam` records them), the deployment record."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from handlers.contract import ApiKind
from packager.config import Auth
from packager.deploy import Deployment, Sam, delete, deploy, logs, read_deployment
from packager.invoke import Bench, InvokeError, aws_host, http_target, media_of, payload_from, readable
from packager.pack import pack
from tests.unit.test_pack_stages import FAKES, config


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://abc123.execute-api.eu-west-1.amazonaws.com/Prod/", ("execute-api", "eu-west-1")),
        ("https://xyz.lambda-url.us-east-2.on.aws/", ("lambda", "us-east-2")),
        ("http://127.0.0.1:3000", None),
        ("https://example.com/predict", None),
    ],
)
def test_aws_hosts_name_their_signing_service_and_region(url: str, expected: tuple[str, str] | None) -> None:
    assert aws_host(url) == expected


def test_bodies_are_recognized_by_their_bytes(tmp_path: Path) -> None:
    assert media_of(b"\x89PNG\r\n\x1a\nrest") == "image/png"
    assert media_of(b"\xff\xd8\xff\xe0") == "image/jpeg"
    assert media_of(b'  {"inputs": []}') == "application/json"
    assert media_of(b"a sentence") == "text/plain"
    listed = tmp_path / "rows.json"
    listed.write_text("[[1, 2]]")
    assert json.loads(payload_from(data=listed).body) == {"inputs": [[1, 2]]}
    import numpy as np

    np.savez(tmp_path / "d.npz", x=np.ones((2, 3), dtype=np.float32), labels=np.array([0, 1]))
    assert json.loads(payload_from(data=tmp_path / "d.npz").body) == {"inputs": [[1.0] * 3] * 2}
    with pytest.raises(InvokeError, match="not a PNG or JPEG"):
        payload_from(image=listed)
    with pytest.raises(InvokeError, match="give one of --data, --image, --text or - "):
        payload_from(data=listed, text="x")
    with pytest.raises(InvokeError, match="nothing to send"):
        payload_from(sample=tmp_path / "missing.json")


def test_answers_read_as_labels_and_scores_or_shapes() -> None:
    body = {
        "predictions": [{"label": "cat", "score": 0.91234, "top_k": [{"label": "cat", "score": 0.91234},
                                                                     {"label": "dog", "score": 0.05}]},
                        {"label": None, "score": None, "top_k": []}],
        "outputs": {"logits": [[0.1, 2.0, -3.5] * 4, [0.0] * 12]},
        "model": "pets", "version": "abc",
    }  # fmt: skip
    assert readable(body) == [
        "row 0: cat  score 0.912  (then dog 0.050)",
        "row 1: no prediction (scores not finite)",
        "logits: shape [2, 12], first row [0.1, 2, -3.5, 0.1, 2, -3.5, 0.1, 2, ...]",
        "model pets version abc",
    ]
    assert readable({"error": "send PNG", "code": "bad_image"}) == ["error (bad_image): send PNG"]


def test_bench_percentiles() -> None:
    stats = Bench(100, [i / 1000 for i in range(1, 101)], 0).percentiles()
    assert (stats["p50_ms"], stats["p90_ms"], stats["p99_ms"], stats["min_ms"], stats["max_ms"]) == (
        pytest.approx(51), pytest.approx(90), pytest.approx(99), pytest.approx(1), pytest.approx(100))  # fmt: skip


def test_auth_defaults_iam_for_aws_hosts_and_none_for_local(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKID")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    aws = http_target("https://abc.execute-api.eu-west-1.amazonaws.com/Prod/", auth=None)
    assert aws.signer is not None and aws.description.endswith("(SigV4 execute-api eu-west-1)")
    url = http_target("https://xyz.lambda-url.us-east-2.on.aws/", auth=None)
    assert url.description.endswith("(SigV4 lambda us-east-2)")
    signed = aws.signer("POST", "https://abc.execute-api.eu-west-1.amazonaws.com/Prod/predict", b"{}", {})  # type: ignore[misc]
    assert (
        signed["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKID/")
        and "/eu-west-1/execute-api/" in signed["Authorization"]
    )
    local = http_target("http://127.0.0.1:3000", auth=None)
    assert local.signer is None and local.api_key is None


FAKE_SAM = """
import json, sys, pathlib
log = pathlib.Path(sys.argv[1])
args = sys.argv[2:]
log.open("a").write(json.dumps(args) + "\\n")
if args[:2] == ["list", "stack-outputs"]:
    print(json.dumps([{"OutputKey": "Endpoint", "OutputValue": "https://abc.execute-api.eu-west-1.amazonaws.com/Prod/"},
                      {"OutputKey": "FunctionName", "OutputValue": "tiny-TinyFunction-1"},
                      {"OutputKey": "Auth", "OutputValue": "iam"}]))
if args[:1] == ["delete"] and "fail" in str(log):
    sys.exit(3)
"""


def fake_sam(tmp_path: Path, name: str = "sam.log") -> tuple[Sam, Path]:
    script = tmp_path / "fake_sam.py"
    script.write_text(FAKE_SAM)
    log = tmp_path / name
    return Sam(command=[sys.executable, str(script), str(log)]), log


def ran(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_deploy_runs_sam_build_and_deploy_in_the_bundle_and_keeps_the_endpoint(tmp_path: Path) -> None:
    bundle = pack(config(tmp_path, recipes=("slim",)), collaborators=FAKES).bundle
    sam, log = fake_sam(tmp_path)
    deployment = deploy(bundle, region="eu-west-1", confirm=False, extra=("--tags", "team=ml"), sam=sam)
    assert ran(log) == [
        ["build", "--region", "eu-west-1"],
        ["deploy", "--stack-name", "tiny", "--no-fail-on-empty-changeset", "--no-confirm-changeset",
         "--region", "eu-west-1", "--tags", "team=ml"],
        ["list", "stack-outputs", "--stack-name", "tiny", "--output", "json", "--region", "eu-west-1"],
    ]  # fmt: skip
    assert deployment.endpoint == "https://abc.execute-api.eu-west-1.amazonaws.com/Prod/"
    assert (deployment.api, deployment.auth, deployment.function_name) == (
        ApiKind.REST,
        Auth.IAM,
        "tiny-TinyFunction-1",
    )
    assert read_deployment(bundle) == deployment

    logs(bundle, tail=True, filter_pattern="ERROR", sam=sam)
    assert ran(log)[-1] == ["logs", "--stack-name", "tiny", "--name", "TinyFunction", "--tail", "--filter", "ERROR",
                            "--region", "eu-west-1"]  # fmt: skip
    assert delete(bundle, confirm=False, sam=sam) == "tiny"
    assert ran(log)[-1] == ["delete", "--stack-name", "tiny", "--no-prompts", "--region", "eu-west-1"]
    assert read_deployment(bundle) is None


def test_guided_deploys_ask_and_a_failing_step_is_named(tmp_path: Path) -> None:
    bundle = pack(config(tmp_path, recipes=("slim",)), collaborators=FAKES).bundle
    sam, log = fake_sam(tmp_path)
    deploy(bundle, region="us-east-1", guided=True, stack_name="tiny-prod", sam=sam)
    assert ran(log)[1] == ["deploy", "--stack-name", "tiny-prod", "--no-fail-on-empty-changeset", "--guided",
                           "--region", "us-east-1"]  # fmt: skip
    failing, _ = fake_sam(tmp_path, "fail.log")
    with pytest.raises(Exception, match=r"sam delete failed \(exit 3\); its output above says why"):
        delete(bundle, sam=failing)
    assert read_deployment(bundle) is not None  # kept: the stack may still exist


def test_a_damaged_record_says_so(tmp_path: Path) -> None:
    (tmp_path / "deployment.json").write_text("{")
    with pytest.raises(Exception, match="is damaged"):
        read_deployment(tmp_path)
    record = Deployment("s", "r", ApiKind.HTTP, Auth.NONE, None, None)
    assert Deployment.from_dict(json.loads(json.dumps(record.to_dict()))) == record
