"""Batch and asynchronous inference: the endpoint's own POST /predict, one row at a time, for the AWS
engines that do the scheduling (a bundle packed with `--mode batch`), and for `lambdafit batch`.

A row is a /predict body (`{"inputs": ...}`, or `{"image"/"text": ...}` with preprocessing), or a CSV
record: the numbers of one row of a single-input model, in column order (empty cells left out). A line that is not JSON is
sent as it is, and answered as /predict answers it (400 malformed_json). Either may carry an `id`;
without one a row is named by its 0-based position in its file. Every row becomes one line, the
/predict answer under `id` and `status`:

    {"id": "7", "status": 200, "outputs": {...}, "model": "digits", "version": "...", "predictions": [...]}
    {"id": "8", "status": 400, "error": "...", "code": "wrong_shape"}

Rows run one per session call, so a line does not depend on which rows shared its batch: the local
run and the fleet write the same lines. Three event sources reach `handle`:

- Step Functions Distributed Map (ItemReader -> ItemBatcher): `{"Items": [{"index", "row"}], "BatchInput":
  {"format"}}`; the lines are returned and the ResultWriter writes them, one per row (FLATTEN).
- SQS (powertools' BatchProcessor): each message body is a row; answered rows are written to S3 as one
  JSONL object per invocation, and a row the model cannot answer is reported as a partial batch
  failure, so SQS retries it and then moves it to the dead-letter queue while the others succeed.
- An asynchronous invocation with one row: its line is written to S3; a row the model cannot answer
  raises, so Lambda retries it and then sends it to the on-failure destination.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from handlers.contract import S3Uri
from handlers.events import JSON, Request

if TYPE_CHECKING:
    from handlers.app import Endpoint

ID = "id"


class RowFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"

    @classmethod
    def of(cls, path: Path) -> RowFormat:
        return cls.CSV if path.suffix.lower() == ".csv" else cls.JSONL


class RawText(str):
    """A row that is not JSON: sent to /predict as it is, so its line says what /predict says of it."""


class RowError(Exception):
    """A row the model could not answer; its line says why."""

    def __init__(self, line: dict[str, Any]) -> None:
        super().__init__(f"row {line.get(ID)}: {line.get('code')}: {line.get('error')}")
        self.line = line


def dumps_line(line: dict[str, Any]) -> str:
    """The one serialization of a line, wherever it is written."""
    return json.dumps(line, separators=(",", ":"), allow_nan=False)


def request_body(row: Any, fmt: RowFormat) -> tuple[Any, Any]:
    """(id or None, the /predict body) of one row."""
    if fmt is RowFormat.CSV and isinstance(row, dict):
        values = dict(row)
        row_id = values.pop(ID, None)
        return row_id, {"inputs": [[_number(value) for value in values.values() if value not in ("", None)]]}
    if isinstance(row, dict) and ID in row:
        body = dict(row)
        return body.pop(ID), body
    return None, row


def _number(text: Any) -> Any:
    try:
        return float(text)
    except (TypeError, ValueError):
        return text  # the endpoint's dtype check answers it


@dataclass
class Scorer:
    endpoint: Endpoint

    def line(self, row: Any, default_id: str, fmt: RowFormat = RowFormat.JSONL) -> dict[str, Any]:
        """The row's line; `default_id` names a row that carries no id."""
        row_id, body = request_body(row, fmt)
        text = body if isinstance(body, RawText) else json.dumps(body)
        request = Request("POST", "/predict", {"content-type": JSON}, {}, text, False)
        response = self.endpoint.handle(request)
        answer: dict[str, Any] = json.loads(response.body)
        return {ID: default_id if row_id is None else row_id, "status": response.status} | answer

    def lines(self, rows: Iterable[tuple[int, Any]], fmt: RowFormat) -> Iterator[dict[str, Any]]:
        for index, row in rows:
            yield self.line(row, str(index), fmt)


def read_rows(handle: IO[str], fmt: RowFormat) -> Iterator[tuple[int, Any]]:
    """(index, row) of a JSONL or CSV file, streamed. A JSONL line that is not JSON is passed on as its
    text, so that its line says what is wrong instead of the whole run failing."""
    if fmt is RowFormat.CSV:
        yield from enumerate(csv.DictReader(handle))
        return
    index = 0
    for text in handle:
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except ValueError:
            row = RawText(text.rstrip("\n"))
        yield index, row
        index += 1


class ResultSink:
    """Where the SQS and asynchronous paths put their lines: JSONL objects under an S3 prefix."""

    def __init__(self, uri: S3Uri | None, client: Any = None) -> None:
        self.uri = uri
        self._client = client

    def write(self, kind: str, name: str, lines: list[dict[str, Any]]) -> S3Uri | None:
        if self.uri is None or not lines:
            return None
        if self._client is None:
            from handlers.model_store import s3_client

            self._client = s3_client()
        target = self.uri.join(kind, f"{name}.jsonl")
        body = "".join(dumps_line(line) + "\n" for line in lines).encode("utf-8")
        self._client.put_object(Bucket=target.bucket, Key=target.key, Body=body, ContentType="application/x-ndjson")
        return target


def handle(scorer: Scorer, sink: ResultSink, event: Any, context: Any) -> Any:
    """One invocation of the batch function, whichever engine sent it."""
    if isinstance(event, dict) and isinstance(event.get("Items"), list):
        fmt = RowFormat((event.get("BatchInput") or {}).get("format") or RowFormat.JSONL)
        items = event["Items"]
        return [scorer.line(item["row"], str(item["index"]), fmt) for item in items]
    request_id = getattr(context, "aws_request_id", None) or "local"
    if isinstance(event, dict) and _is_sqs(event):
        return _sqs(scorer, sink, event, request_id)
    line = scorer.line(event, request_id)
    if line["status"] >= 400:
        raise RowError(line)
    sink.write("async", request_id, [line])
    return line


def _is_sqs(event: dict[str, Any]) -> bool:
    records = event.get("Records")
    return isinstance(records, list) and bool(records) and records[0].get("eventSource") == "aws:sqs"


def _sqs(scorer: Scorer, sink: ResultSink, event: dict[str, Any], request_id: str) -> dict[str, Any]:
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    answered: list[dict[str, Any]] = []

    def record_handler(record: Any) -> None:
        try:
            row = json.loads(record.body)
        except ValueError:
            row = RawText(record.body)
        line = scorer.line(row, record.message_id)
        if line["status"] >= 400:
            raise RowError(line)
        answered.append(line)

    response = process_partial_response(
        event=event, record_handler=record_handler, processor=BatchProcessor(event_type=EventType.SQS)
    )
    sink.write("sqs", request_id, answered)
    return dict(response)
