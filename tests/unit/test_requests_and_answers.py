"""What endpoints take and give back: raw bodies, --outputs and --top-k, the OpenAPI document of each
request kind, the sample request a bundle ships. Tiny ONNX graphs, real onnxruntime, fake measuring."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from PIL import Image

from handlers.errors import ManifestError
from handlers.events import RestEvent
from handlers.manifest import ImagePreprocessing, Manifest, Postprocessing, TensorSpec, TextPreprocessing
from handlers.openapi import document, tensor_schema
from packager.emulator import LambdaContext
from packager.errors import LambdafitError
from packager.pack import pack
from packager.postprocess import AUTO_MAX_VALUES, choose_outputs
from tests.conftest import handler_for
from tests.unit.test_pack_stages import FAKES, config


def manifest(outputs: tuple[TensorSpec, ...], classifier: str | None = None, **changes: Any) -> Manifest:
    inputs = (TensorSpec("x", "float32", ("batch", 64)),)
    return Manifest("m", "v1", "0" * 64, inputs, outputs, classifier_output=classifier, **changes)


DETECTOR = (
    TensorSpec("boxes", "float32", ("batch", 100, 4)),
    TensorSpec("maps", "float32", ("batch", 85, 25200)),
    TensorSpec("logits", "float32", ("batch", 10)),
)
REFERENCE = {"boxes": np.zeros((2, 100, 4)), "maps": np.zeros((2, 85, 25200)), "logits": np.zeros((2, 10))}


def test_auto_leaves_out_raw_maps_and_says_so() -> None:
    chosen = choose_outputs(("auto",), 3, manifest(DETECTOR), REFERENCE)
    assert chosen.config == Postprocessing(("boxes", "logits"), 3)
    assert "/predict leaves out maps (2,142,000 numbers a row) and answers with boxes, logits" in chosen.notes[0]
    assert choose_outputs(("all",), 5, manifest(DETECTOR), REFERENCE).config == Postprocessing(None, 5)
    assert choose_outputs(("boxes",), 5, manifest(DETECTOR), REFERENCE).config.outputs == ("boxes",)


def test_a_model_whose_outputs_are_all_large_keeps_them_with_a_warning() -> None:
    big = (TensorSpec("scores", "float32", ("batch", 40, 6625)),)
    chosen = choose_outputs(("auto",), 5, manifest(big), {"scores": np.zeros((1, 40, 6625))})
    assert chosen.config.outputs is None and "every output is large" in chosen.notes[0]
    assert AUTO_MAX_VALUES < 40 * 6625


def test_none_is_for_classifiers_and_unknown_names_are_refused() -> None:
    classifier = manifest(DETECTOR, classifier="logits")
    assert choose_outputs(("none",), 2, classifier, REFERENCE).config == Postprocessing((), 2)
    with pytest.raises(LambdafitError, match="no classifier"):
        choose_outputs(("none",), 2, manifest(DETECTOR), REFERENCE)
    with pytest.raises(LambdafitError, match=r"--outputs names \['scores'\]"):
        choose_outputs(("scores",), 2, classifier, REFERENCE)
    with pytest.raises(ManifestError, match="postprocessing names outputs"):
        manifest(DETECTOR, postprocessing=Postprocessing(("nope",)))


def test_the_postprocessing_travels_in_the_manifest() -> None:
    original = manifest(DETECTOR, classifier="logits", postprocessing=Postprocessing(("boxes",), 2))
    again = Manifest.from_dict(json.loads(original.dumps()))
    assert again.postprocessing == Postprocessing(("boxes",), 2)
    old = json.loads(original.dumps())
    del old["postprocessing"]
    assert Manifest.from_dict(old).postprocessing == Postprocessing()


def call(handler: Any, body: bytes | str, media: str = "application/json") -> tuple[int, dict[str, Any]]:
    event = RestEvent.build("POST", "/predict", body=body, headers={"Content-Type": media})
    result = handler(event, LambdaContext(function_name="t"))
    return result["statusCode"], json.loads(result["body"])


def test_outputs_none_and_top_k_shape_the_answer(tmp_path: Path) -> None:
    bundle = pack(config(tmp_path, recipes=("slim",), outputs="none", top_k=2), collaborators=FAKES).bundle
    handler = handler_for(bundle / "function" / "model")
    status, body = call(handler, json.dumps({"inputs": [[1.0, 2.0, 3.0, 4.0]]}))
    assert status == 200, body
    assert body["outputs"] == {} and len(body["predictions"][0]["top_k"]) == 2


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def image_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("image")
    spec = folder / "preprocess.json"
    spec.write_text(json.dumps({"kind": "image", "size": [2, 2], "mode": "L"}))
    return pack(config(folder, recipes=("slim",), preprocess=spec), collaborators=FAKES).bundle


def test_raw_png_jpeg_and_json_base64_give_the_same_answer(image_bundle: Path) -> None:
    handler = handler_for(image_bundle / "function" / "model")
    pixels = np.array([[0, 64], [128, 255]])
    raw = png(pixels)
    status, as_raw = call(handler, raw, "image/png")
    assert status == 200, as_raw
    status, as_json = call(handler, json.dumps({"image": base64.b64encode(raw).decode()}))
    assert as_raw == as_json
    jpeg = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8), mode="L").save(jpeg, format="JPEG", quality=100)
    status, as_jpeg = call(handler, jpeg.getvalue(), "image/jpeg")
    assert status == 200 and np.allclose(as_jpeg["outputs"]["logits"], as_raw["outputs"]["logits"], atol=0.05)


def test_a_raw_body_the_bundle_does_not_take_is_a_415_naming_what_it_takes(image_bundle: Path) -> None:
    handler = handler_for(image_bundle / "function" / "model")
    status, body = call(handler, "hello", "text/plain")
    assert (status, body["code"]) == (415, "unsupported_media_type")
    assert body["error"] == "this model takes application/json, image/png, image/jpeg, not text/plain"
    status, body = call(handler, b"GIF89a", "image/gif")
    assert status == 415 and "send the body as application/json or image/png or image/jpeg" in body["error"]
    status, body = call(handler, png(np.zeros((2, 2)))[:20], "image/png")
    assert (status, body["code"]) == (400, "bad_image")


def test_the_bundle_ships_a_real_sample_of_its_kind(image_bundle: Path) -> None:
    events, samples = image_bundle / "events", image_bundle / "requests"
    with Image.open(samples / "sample.png") as sample:
        assert (sample.format, sample.mode, sample.size) == ("PNG", "L", (2, 2))
    request = json.loads((samples / "request.json").read_text())
    assert base64.b64decode(request["image"]) == (samples / "sample.png").read_bytes()
    assert sorted(path.name for path in events.iterdir()) == [
        "health-rest.json", "predict-raw-rest.json", "predict-rest.json", "v2-infer-rest.json", "v2-metadata-rest.json"]  # fmt: skip
    handler = handler_for(image_bundle / "function" / "model")
    for name in ("predict-rest.json", "predict-raw-rest.json"):
        event = json.loads((events / name).read_text())
        result = handler(event, LambdaContext(function_name="t"))
        assert result["statusCode"] == 200, (name, result["body"])
    assert json.loads((events / "predict-raw-rest.json").read_text())["isBase64Encoded"] is True


def test_a_tensor_bundle_ships_its_row_as_the_sample_request(tmp_path: Path) -> None:
    bundle = pack(config(tmp_path, recipes=("slim",)), collaborators=FAKES).bundle
    request = json.loads((bundle / "requests" / "request.json").read_text())
    assert np.shape(request["inputs"]) == (1, 4) and not (bundle / "requests" / "sample.png").exists()


def test_openapi_describes_the_request_kinds_the_bundle_takes() -> None:
    from openapi_spec_validator import validate

    image = manifest(
        (TensorSpec("logits", "float32", ("batch", 10)),), "logits",
        preprocessing=ImagePreprocessing(size=(8, 8), mode="L"), labels=tuple("0123456789"),
    )  # fmt: skip
    doc = document(image, "1")
    validate(doc)
    body = doc["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "image/png", "image/jpeg"}
    assert body["image/png"]["schema"]["format"] == "binary"
    kinds = doc["components"]["schemas"]["PredictRequest"]["oneOf"]
    assert [kind["title"] for kind in kinds] == ["tensors", "images"]
    schema = {"components": doc["components"]} | doc["components"]["schemas"]["PredictRequest"]
    jsonschema.validate({"inputs": [[0.5] * 64]}, schema)
    jsonschema.validate({"image": "aGk="}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"inputs": [[0.5] * 63]}, schema)
    answer = doc["components"]["schemas"]["PredictResponse"]
    assert "predictions" in answer["properties"] and "logits" in answer["properties"]["outputs"]["properties"]
    text = manifest((TensorSpec("logits", "float32", ("batch", 2)),), preprocessing=TextPreprocessing())
    text_doc = document(text, "1")
    validate(text_doc)
    assert set(text_doc["paths"]["/predict"]["post"]["requestBody"]["content"]) == {"application/json", "text/plain"}


def test_tensor_schemas_carry_dtype_shape_and_ranges() -> None:
    ids = TensorSpec("ids", "int64", ("batch", "seq"), value_range=(0, 30521))
    assert tensor_schema(ids) == {
        "type": "array",
        "items": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 30521}},
        "description": "ids: int64[batch, seq]",
    }
    image = TensorSpec("pixels", "float32", (1, 3, 2, 2))
    schema = tensor_schema(image)
    assert "minItems" not in schema and schema["items"] | {"items": None} == {
        "type": "array", "items": None, "minItems": 3, "maxItems": 3,
    }  # fmt: skip
    flag = TensorSpec("flag", "bool", (), batch_axis=None)
    assert tensor_schema(flag)["type"] == "boolean"


def text_model(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    table = numpy_helper.from_array(np.arange(48, dtype=np.float32).reshape(16, 3) / 10, "table")
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["table", "input_ids"], ["embedded"]),
            helper.make_node("ReduceMean", ["embedded"], ["logits"], axes=[1], keepdims=0),
        ],
        "text",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
        [table],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_a_text_bundle_ships_a_sentence_from_its_data_and_takes_text_plain(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    from packager.config import PackConfig

    words = ["the", "model", "serves", "text", "on", "lambda"]
    tokenizer = Tokenizer(models.WordLevel({"[PAD]": 0, "[UNK]": 1} | {w: i + 2 for i, w in enumerate(words)},
                                           unk_token="[UNK]"))  # fmt: skip
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.enable_padding(length=8)
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    ids = np.array([tokenizer.encode("the model serves text on lambda").ids] * 4, dtype=np.int64)
    np.savez(tmp_path / "eval.npz", input_ids=ids)
    spec = tmp_path / "preprocess.json"
    spec.write_text(json.dumps({"kind": "text", "max_length": 8}))
    config = PackConfig(model=str(text_model(tmp_path / "text.onnx")), name="text", output_dir=tmp_path / "out",
                        python="3.12", recipes=("slim",), preprocess=spec, eval_data=tmp_path / "eval.npz")  # fmt: skip
    bundle = pack(config, collaborators=FAKES).bundle
    assert (bundle / "requests" / "sample.txt").read_text() == "the model serves text on lambda"
    assert json.loads((bundle / "requests" / "request.json").read_text()) == {"text": "the model serves text on lambda"}
    handler = handler_for(bundle / "function" / "model")
    status, raw = call(handler, "the model serves text on lambda", "text/plain; charset=utf-8")
    assert status == 200, raw
    assert (status, raw) == call(handler, json.dumps({"text": "the model serves text on lambda"}))
    event = json.loads((bundle / "events" / "predict-raw-rest.json").read_text())
    assert event["headers"]["Content-Type"] == "text/plain" and not event["isBase64Encoded"]
    status, body = call(handler, b"\xff\xfe", "text/plain")
    assert (status, body["code"]) == (400, "bad_text")
