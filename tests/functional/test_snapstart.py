"""SnapStart: the bundle's hooks, run as Lambda's runtime runs them, in fresh processes; and the
template, checked by `sam validate --lint`, aws-sam-translator and checkov."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from handlers.contract import ApiKind, RuntimeSettings
from packager.config import Arch, Auth, PackageType
from packager.template import AppModel, render_template
from tests.conftest import EVENTS, ROOT
from tests.functional.test_template_matrix import assert_the_tools_pass, env, translate

# The runtime's side, as awslambdaric does it: import the handler module (init), run the before-snapshot
# hooks in reverse registration order, snapshot; then, in each sandbox restored from the snapshot (two
# forks here), the after-restore hooks in order, then the first invocation.
RUNTIME = textwrap.dedent(
    """
    import json, os, random, sys, tempfile
    import numpy as np
    import snapshot_restore_py as srp

    import handlers.lambda_function as fn

    init = {"model_loaded_at_import": fn.service.runtime is not None, "hooks": [
        [f.__name__ for f, _, _ in srp.get_before_snapshot()], [f.__name__ for f, _, _ in srp.get_after_restore()]]}
    for func, args, kwargs in reversed(srp.get_before_snapshot()):
        func(*args, **kwargs)
    event = json.load(open(sys.argv[1]))
    pipes = []
    for sandbox in range(2):
        read, write = os.pipe()
        if os.fork() == 0:
            os.close(read)
            for func, args, kwargs in srp.get_after_restore():
                func(*args, **kwargs)
            answer = fn.lambda_handler(event, None)
            state = {"random": random.random(), "numpy": float(np.random.random()),
                     "tempname": next(tempfile._get_candidate_names()), "status": answer["statusCode"],
                     "events": fn.hooks.events}
            os.write(write, json.dumps(state).encode())
            os._exit(0)
        os.close(write)
        pipes.append(read)
    sandboxes = []
    for read in pipes:
        sandboxes.append(json.loads(os.read(read, 1 << 20)))
        os.wait()
    print(json.dumps({"init": init, "sandboxes": sandboxes}))
    """
)


def run_as_lambda(model_dir: Path, event: Path) -> dict[str, Any]:
    environ = os.environ | {"LAMBDAFIT_MODEL_DIR": str(model_dir), "POWERTOOLS_METRICS_DISABLED": "true",
                            "POWERTOOLS_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", RUNTIME, str(event)],
        capture_output=True,
        text=True,
        env=environ,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_hooks_warm_the_loaded_model_before_the_snapshot_and_reseed_each_restored_sandbox(digits_bundle: Path) -> None:
    model_dir = digits_bundle / "function" / "model"
    assert (model_dir / "warmup.json").is_file()
    seen = run_as_lambda(model_dir, EVENTS / "predict-rest.json")
    assert seen["init"] == {"model_loaded_at_import": True, "hooks": [["before_snapshot"], ["after_restore"]]}
    first, second = seen["sandboxes"]
    for sandbox in (first, second):
        before, after = sandbox["events"]
        assert before["phase"] == "before_snapshot" and before["model_ready"] and before["warmup_runs"] == 3
        assert after["phase"] == "after_restore" and after["reseeded"] and after["ms"] < after["budget_ms"]
        assert sandbox["status"] == 200
    # Two sandboxes from one snapshot: without the reseed they would draw the same numbers and names.
    assert first["random"] != second["random"]
    assert first["numpy"] != second["numpy"]
    assert first["tempname"] != second["tempname"]


def test_without_the_runtime_library_nothing_is_registered_and_the_handler_still_serves(
    digits_bundle: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "snapshot_restore_py.py"
    blocker.write_text("raise ImportError('not a Lambda runtime')\n")
    environ = os.environ | {"LAMBDAFIT_MODEL_DIR": str(digits_bundle / "function" / "model"),
                            "POWERTOOLS_METRICS_DISABLED": "true", "PYTHONPATH": f"{tmp_path}:{ROOT}"}  # fmt: skip
    code = (
        "import json, sys; import handlers.lambda_function as fn; "
        "print(json.dumps([fn.hooks is None, fn.lambda_handler(json.load(open(sys.argv[1])), None)['statusCode']]))"
    )
    result = subprocess.run([sys.executable, "-c", code, str(EVENTS / "predict-rest.json")], capture_output=True,
                            text=True, env=environ, timeout=300, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [True, 200]


def snap_app(package: PackageType, arch: Arch = Arch.X86_64) -> AppModel:
    return AppModel(
        name="digits", description="snapstart", code_dir="./function", python="3.13", arch=arch, memory_mb=1024,
        package_type=package, api=ApiKind.REST, auth=Auth.IAM, settings=RuntimeSettings(), reserved_concurrency=10,
        snapstart=True,
    )  # fmt: skip


@pytest.mark.parametrize(("package", "arch"), [(PackageType.ZIP, Arch.X86_64), (PackageType.IMAGE, Arch.ARM64)])
def test_snapstart_template_passes_the_tools_and_snapshots_the_published_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, package: PackageType, arch: Arch
) -> None:
    template = render_template(snap_app(package, arch))
    assert_the_tools_pass(template, tmp_path)
    for name, value in env().items():
        if name.startswith("AWS_") and name != "AWS_ENDPOINT_URL":
            monkeypatch.setenv(name, value)
    resources = translate(template)["Resources"]
    [function] = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Function"]
    assert function["Properties"]["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert "EphemeralStorage" not in function["Properties"] and "ProvisionedConcurrencyConfig" not in json.dumps(
        resources
    )
    [version] = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Version"]
    [alias] = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Alias"]
    assert alias["Properties"]["Name"] == "live"
    assert "FunctionVersion" in alias["Properties"] and version["Properties"]["FunctionName"]
