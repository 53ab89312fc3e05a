"""Batch inference: the batch function's entry point under the events of SQS (moto queues with a
redrive policy), an asynchronous invocation and a Distributed Map batch (read from moto S3 as the
ItemReader would), against `lambdafit batch` on the same rows; and the stack that wires them, checked by
`sam validate --lint`, checkov, aws-sam-translator and moto's Step Functions."""

from __future__ import annotations

import csv
import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import numpy as np
import pytest
from moto import mock_aws

from handlers.batch import RowError, RowFormat, read_rows
from handlers.contract import ApiKind
from packager.batch import run_batch
from packager.config import Arch, PackageType
from packager.emulator import LambdaContext
from packager.template import MAX_RECEIVES, AppModel, render_template
from tests.conftest import load_event
from tests.functional.test_template_matrix import assert_the_tools_pass, env, translate

REGION = "us-east-1"
BUCKET = load_event("batch/s3-put-rows.json")["Records"][0]["s3"]["bucket"]["name"]
KEY = load_event("batch/s3-put-rows.json")["Records"][0]["s3"]["object"]["key"]
POISON = {"id": "poison", "inputs": [[1, 2, 3]]}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {"AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
        yield


@pytest.fixture
def function(digits_bundle: Path, monkeypatch: pytest.MonkeyPatch, aws: None) -> ModuleType:
    """The batch function's entry point, initialized as Lambda would, with results going to moto S3."""
    monkeypatch.setenv("LAMBDAFIT_MODEL_DIR", str(digits_bundle / "function" / "model"))
    monkeypatch.setenv("LAMBDAFIT_RESULTS_URI", f"s3://{BUCKET}/results")
    import handlers.batch_function

    return importlib.reload(handlers.batch_function)


def rows(digits_files: dict[str, Path], count: int) -> list[Any]:
    with np.load(digits_files["eval"]) as data:
        x = data["x"][:count].reshape(count, -1)
    found: list[Any] = [{"inputs": [row.tolist()]} for row in x]
    found[3] = {"id": "third", **found[3]}
    found.insert(5, POISON)
    return found


def write_jsonl(path: Path, items: list[Any]) -> Path:
    path.write_text("".join(json.dumps(item) + "\n" for item in items) + "this line is not JSON\n")
    return path


def distributed_map(function: ModuleType, body: bytes, fmt: RowFormat, batch_rows: int) -> list[dict[str, Any]]:
    """What the state machine does with the object: ItemReader, ItemSelector {index, row}, ItemBatcher,
    the function per batch, ResultWriter with FLATTEN (one line per row, in any order)."""
    import io

    items = [{"index": index, "row": row} for index, row in read_rows(io.StringIO(body.decode()), fmt)]
    lines = []
    for start in range(0, len(items), batch_rows):
        event = {"Items": items[start : start + batch_rows], "BatchInput": {"format": fmt.value}}
        lines += json.loads(json.dumps(function.lambda_handler(event, LambdaContext("batch"))))
    return lines


@pytest.mark.parametrize("fmt", list(RowFormat))
def test_lambdafit_batch_and_the_distributed_map_write_the_same_lines(
    function: ModuleType, digits_bundle: Path, digits_files: dict[str, Path], tmp_path: Path, fmt: RowFormat
) -> None:
    items = rows(digits_files, 40)
    if fmt is RowFormat.JSONL:
        source = write_jsonl(tmp_path / "rows.jsonl", items)
    else:
        source = tmp_path / "rows.csv"
        with source.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id"] + [f"x{i}" for i in range(64)])
            for index, item in enumerate(items):
                writer.writerow([item.get("id", f"r{index}"), *item["inputs"][0]])
    run = run_batch(digits_bundle, source, tmp_path / "out.jsonl")
    local = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert run.rows == len(local) == len(items) + (fmt is RowFormat.JSONL)
    boto3.client("s3", region_name=REGION).put_object(Bucket=BUCKET, Key=KEY, Body=source.read_bytes())
    body = boto3.client("s3", region_name=REGION).get_object(Bucket=BUCKET, Key=KEY)["Body"].read()
    fleet = distributed_map(function, body, fmt, batch_rows=7)
    assert sorted(fleet, key=lambda line: line["id"]) == sorted(local, key=lambda line: line["id"])
    by_id = {line["id"]: line for line in local}
    assert by_id["poison"]["status"] == 400 and by_id["poison"]["code"] == "wrong_shape"
    assert by_id["third"]["status"] == 200 and by_id["third"]["predictions"][0]["label"]
    if fmt is RowFormat.JSONL:
        assert by_id["0"]["status"] == 200 and by_id[str(len(items))]["code"] == "malformed_json"
    assert run.errors == sum(line["status"] >= 400 for line in local)


def test_sqs_poison_record_goes_to_the_dead_letter_queue_while_the_rest_succeed(
    function: ModuleType, digits_files: dict[str, Path]
) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    dlq = sqs.create_queue(QueueName="digits-batch-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVES)})
    queue = sqs.create_queue(QueueName="digits-batch", Attributes={"RedrivePolicy": redrive})["QueueUrl"]
    items = rows(digits_files, 24)
    for item in items:
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(item))
    template = load_event("batch/sqs-predict.json")["Records"][0]
    failures = 0
    for invocation in range(50):  # Lambda's poller: receive, invoke, delete what succeeded, let failures reappear
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, AttributeNames=["All"]).get(
            "Messages", []
        )
        if not messages:
            break
        records = [template | {"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                               "md5OfBody": m["MD5OfBody"]} for m in messages]  # fmt: skip
        context = LambdaContext("batch", aws_request_id=f"invocation-{invocation}")
        answer = function.lambda_handler({"Records": records}, context)
        failed = {item["itemIdentifier"] for item in answer["batchItemFailures"]}
        failures += len(failed)
        for m in messages:
            if m["MessageId"] in failed:
                sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
            else:
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    dead = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10)["Messages"]
    assert [json.loads(m["Body"]) for m in dead] == [POISON]
    assert failures == MAX_RECEIVES
    s3 = boto3.client("s3", region_name=REGION)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="results/sqs/")["Contents"]]
    lines = [
        json.loads(line) for key in keys for line in s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().splitlines()
    ]
    assert len(lines) == len(items) - 1 and all(line["status"] == 200 for line in lines)
    assert "third" in {line["id"] for line in lines}


def test_asynchronous_row_is_written_and_a_poison_row_raises_for_the_on_failure_destination(
    function: ModuleType, digits_files: dict[str, Path]
) -> None:
    good = rows(digits_files, 8)[0]
    line = function.lambda_handler(good, LambdaContext("batch", aws_request_id="req-1"))
    assert line["id"] == "req-1" and line["status"] == 200
    body = boto3.client("s3", region_name=REGION).get_object(Bucket=BUCKET, Key="results/async/req-1.jsonl")["Body"]
    assert json.loads(body.read()) == line
    with pytest.raises(RowError, match="poison: wrong_shape"):
        function.lambda_handler(POISON, LambdaContext("batch", aws_request_id="req-2"))


def test_sqs_event_fixtures(function: ModuleType) -> None:
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

    assert function.lambda_handler(load_event("batch/sqs-predict.json"), LambdaContext("batch")) == {
        "batchItemFailures": []
    }
    with pytest.raises(BatchProcessingError, match="All records failed"):  # the whole batch is retried
        function.lambda_handler(load_event("batch/sqs-poison.json"), LambdaContext("batch"))


def batch_app(package: PackageType, reserved: int | None) -> AppModel:
    return AppModel(
        name="digits", description="batch", code_dir="./function", python="3.13", arch=Arch.ARM64, memory_mb=1024,
        package_type=package, api=ApiKind.HTTP, reserved_concurrency=reserved, batch=True, batch_rows=48,
    )  # fmt: skip


@pytest.mark.parametrize(("package", "reserved"), [(PackageType.ZIP, 40), (PackageType.IMAGE, None)])
def test_batch_stack_passes_the_tools_and_ties_every_engine_to_the_reserved_concurrency(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, package: PackageType, reserved: int | None
) -> None:
    template = render_template(batch_app(package, reserved))
    assert_the_tools_pass(template, tmp_path)
    for name, value in env().items():
        if name.startswith("AWS_") and name != "AWS_ENDPOINT_URL":
            monkeypatch.setenv(name, value)
    resources = translate(template)["Resources"]
    concurrency = reserved or 100
    batch_fn = resources["DigitsBatchFunction"]["Properties"]
    assert batch_fn["ReservedConcurrentExecutions"] == concurrency
    if package is PackageType.IMAGE:
        assert batch_fn["ImageConfig"] == {"Command": ["handlers.batch_function.lambda_handler"]}
    else:
        assert batch_fn["Handler"] == "handlers.batch_function.lambda_handler"
    [mapping] = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": concurrency}
    [invoke_config] = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::EventInvokeConfig"]
    assert invoke_config["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["DigitsAsyncFailures", "Arn"]
    }
    queue = resources["DigitsBatchQueue"]["Properties"]
    assert queue["RedrivePolicy"]["maxReceiveCount"] == MAX_RECEIVES
    assert queue["VisibilityTimeout"] >= 6 * batch_fn["Timeout"]
    machine = resources["DigitsBatchStateMachine"]["Properties"]
    definition = json.loads(
        "\n".join(machine["DefinitionString"]["Fn::Join"][1])
        .replace("${Function}", "arn:aws:lambda:us-east-1:123456789012:function:digits-batch:live")
        .replace("${Bucket}", BUCKET)
    )
    for name, fmt in (("ScoreJsonl", "JSONL"), ("ScoreCsv", "CSV")):
        state = definition["States"][name]
        assert state["MaxConcurrency"] == concurrency
        assert state["ItemReader"]["ReaderConfig"]["InputType"] == fmt
        assert state["ItemBatcher"]["MaxItemsPerBatch"] == 48
        assert state["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"}
        assert state["ResultWriter"]["WriterConfig"] == {"OutputType": "JSONL", "Transformation": "FLATTEN"}
        assert state["ItemProcessor"]["States"]["Score"]["Arguments"]["FunctionName"].endswith(":live")
    with mock_aws():
        sfn = boto3.client("stepfunctions", region_name=REGION)
        arn = sfn.create_state_machine(name="digits-batch", definition=json.dumps(definition),
                                       roleArn="arn:aws:iam::123456789012:role/sfn")["stateMachineArn"]  # fmt: skip
        assert json.loads(sfn.describe_state_machine(stateMachineArn=arn)["definition"]) == definition
        execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"key": KEY}))["executionArn"]
        assert sfn.describe_execution(executionArn=execution)["status"] in ("RUNNING", "SUCCEEDED")
