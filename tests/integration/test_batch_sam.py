"""The batch function in the SAM CLI's Lambda container: a Distributed Map batch (the event Step
Functions sends after ItemReader, ItemSelector and ItemBatcher) answered with the lines `lambdafit batch`
writes for the same rows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from packager.batch import run_batch
from tests.integration.conftest import Sam

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def batch_bundle(sam: Sam, digits_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from packager.config import Mode, PackageType, PackConfig
    from packager.pack import pack
    from tests.conftest import DIGITS

    config = PackConfig(
        model=f"{DIGITS / 'model.py'}:build", name="digits-batch", output_dir=tmp_path_factory.mktemp("batch"),
        eval_data=digits_files["eval"], calibration_data=digits_files["train"], package_type=PackageType.ZIP,
        recipes=("slim+int8-static",), mode=Mode.BATCH,
    )  # fmt: skip
    bundle = pack(config).bundle
    work = tmp_path_factory.mktemp("sam-batch") / "digits-batch"
    shutil.copytree(bundle, work)
    result = sam.run("build", "-t", "template.yaml", cwd=work)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return work


def test_map_batch_in_the_lambda_container_gives_the_lines_lambdafit_batch_writes(
    sam: Sam, batch_bundle: Path, digits_files: dict[str, Path], tmp_path: Path
) -> None:
    with np.load(digits_files["eval"]) as data:
        rows = [{"inputs": [row.tolist()]} for row in data["x"][:12].reshape(12, -1)]
    rows[4] = {"id": "poison", "inputs": [[1, 2, 3]]}
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    run_batch(batch_bundle, source, tmp_path / "out.jsonl")
    local = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    event = tmp_path / "map-batch.json"
    items = [{"index": index, "row": row} for index, row in enumerate(rows)]
    event.write_text(json.dumps({"Items": items, "BatchInput": {"format": "jsonl"}}))
    # `sam local` resolves the bucket's !Ref to its logical id, no bucket name: give the results URI as AWS would.
    variables = tmp_path / "env.json"
    variables.write_text(
        json.dumps({"DigitsBatchBatchFunction": {"LAMBDAFIT_RESULTS_URI": "s3://digits-batch/results"}})
    )
    result = sam.run("local", "invoke", "-e", str(event), "--env-vars", str(variables), "--skip-pull-image",
                     "DigitsBatchBatchFunction", cwd=batch_bundle, timeout=600)  # fmt: skip
    lines = [line for line in result.stdout.strip().splitlines() if line.startswith("[")]
    assert lines, result.stdout[-2000:] + result.stderr[-3000:]
    answer = json.loads(lines[-1])
    assert answer == local, result.stderr[-2000:]
    assert [line["status"] for line in answer].count(400) == 1
