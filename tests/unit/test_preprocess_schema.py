"""docs/preprocess.schema.json says what the handler's parser takes: same fields per kind, every example
valid for both, and what one refuses the other refuses too."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from handlers.errors import ManifestError
from handlers.manifest import PREPROCESSING, preprocessing_from_dict
from tests.conftest import DIGITS, ROOT

DOCS = ROOT / "docs"
SCHEMA = json.loads((DOCS / "preprocess.schema.json").read_text())
EXAMPLES = sorted((DOCS / "preprocess-examples").glob("*.json"))


def validate(document: Any) -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.Draft202012Validator(SCHEMA).validate(document)


def test_the_schema_has_each_kind_with_the_parsers_fields() -> None:
    assert set(SCHEMA["$defs"]) == set(PREPROCESSING)
    for kind, cls in PREPROCESSING.items():
        properties = set(SCHEMA["$defs"][kind]["properties"])
        assert properties == {"kind"} | {item.name for item in fields(cls)}, kind  # type: ignore[arg-type]


@pytest.mark.parametrize("path", [*EXAMPLES, DIGITS / "preprocess.json"], ids=lambda p: p.name)
def test_every_example_is_valid_for_the_schema_and_the_parser(path: Path) -> None:
    document = json.loads(path.read_text())
    validate(document)
    assert preprocessing_from_dict(document).kind == document["kind"]
    assert path.name in (DOCS / "preprocess.md").read_text() or path.parent == DIGITS


@pytest.mark.parametrize(
    "document",
    [
        {"kind": "image"},
        {"kind": "image", "size": [8]},
        {"kind": "image", "size": [8, 8], "mode": "CMYK"},
        {"kind": "image", "size": [8, 8], "layout": "CHWN"},
        {"kind": "image", "size": [8, 8], "resize": "nearest"},
        {"kind": "text", "max_length": 0},
        {"kind": "text", "tokenizer": "../secret.json"},
        {"kind": "audio"},
    ],
)
def test_what_the_schema_refuses_the_parser_refuses(document: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        validate(document)
    with pytest.raises(ManifestError):
        preprocessing_from_dict(document)
