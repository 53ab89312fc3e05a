"""Hugging Face checkpoint folders packed with `lambdafit pack ./folder`: tiny random-weight BERT,
DistilBERT, RoBERTa and ViT checkpoints built here with transformers' own classes and a tokenizer trained
here with `tokenizers`, then called through the bundle's handler with text or images and compared with
the torch model itself on the tokens (pixels) transformers' own tokenizer (image processor) makes."""

from __future__ import annotations

import base64
import io
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest
import torch
import transformers
from PIL import Image
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from typer.testing import CliRunner

from handlers.events import RestEvent
from handlers.manifest import DimBounds, ImagePreprocessing, Manifest, TextPreprocessing
from packager.cli import app
from packager.config import PackConfig
from packager.convert_hf import load_checkpoint
from packager.emulator import LambdaContext
from packager.errors import LambdafitError, ModelLoadError
from packager.load import LoadOptions, TorchModel, load_model
from tests.conftest import handler_for

SENTENCES = [
    "the model serves text fast",
    "lambda starts cold and then stays warm",
    "a small model is a fast model",
    "tokens go in and labels come out",
    "images and text are both fine here",
    "alice flew from paris to berlin on monday",
]
TEXTS = ["the model serves text", "alice flew to berlin and paris, then stayed warm", "cold"]
SPECIAL_WORDPIECE = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
SPECIAL_BPE = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
TINY = {"num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 64}


def wordpiece(fast: type[Any]) -> Any:
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.train_from_iterator(
        SENTENCES * 3, trainers.WordPieceTrainer(vocab_size=200, special_tokens=SPECIAL_WORDPIECE)
    )
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    tokenizer.decoder = decoders.WordPiece()
    return fast(tokenizer_object=tokenizer, model_max_length=128)


def byte_level_bpe() -> Any:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=SPECIAL_BPE, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(SENTENCES * 3, trainer)
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return transformers.RobertaTokenizerFast(tokenizer_object=tokenizer, model_max_length=62)


def bert(folder: Path) -> None:
    tokenizer = wordpiece(transformers.BertTokenizerFast)
    labels = {0: "negative", 1: "positive", 2: "neutral"}
    config = transformers.BertConfig(vocab_size=len(tokenizer), hidden_size=32, id2label=labels, **TINY)
    _save(transformers.BertForSequenceClassification(config), tokenizer, folder)


def distilbert(folder: Path) -> None:
    tokenizer = wordpiece(transformers.DistilBertTokenizerFast)
    config = transformers.DistilBertConfig(
        vocab_size=len(tokenizer), dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=64,
        id2label={0: "spam", 1: "ham"},
    )  # fmt: skip
    _save(transformers.DistilBertForSequenceClassification(config), tokenizer, folder)


def bert_features(folder: Path) -> None:
    tokenizer = wordpiece(transformers.BertTokenizerFast)
    config = transformers.BertConfig(vocab_size=len(tokenizer), hidden_size=48, **TINY)
    _save(transformers.BertModel(config), tokenizer, folder)


def roberta_tokens(folder: Path) -> None:
    tokenizer = byte_level_bpe()
    tags = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}
    config = transformers.RobertaConfig(
        vocab_size=len(tokenizer), hidden_size=32, pad_token_id=1, bos_token_id=0, eos_token_id=2,
        type_vocab_size=1, id2label=tags, **(TINY | {"max_position_embeddings": 64 + 2}),
    )  # fmt: skip
    _save(transformers.RobertaForTokenClassification(config), tokenizer, folder)


def vit(folder: Path) -> None:
    config = transformers.ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, id2label={0: "cat", 1: "dog", 2: "bird", 3: "fish"}, **TINY
    )
    _save(transformers.ViTForImageClassification(config), None, folder)
    processor = transformers.ViTImageProcessorPil(
        size={"height": 32, "width": 32}, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]
    )
    processor.save_pretrained(folder)


def _save(model: Any, tokenizer: Any, folder: Path) -> None:
    model.save_pretrained(folder)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)


@dataclass(frozen=True)
class Case:
    build: Callable[[Path], None]
    auto: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    labels: tuple[str, ...] = ()


CASES = {
    "bert": Case(bert, "AutoModelForSequenceClassification", ("input_ids", "attention_mask", "token_type_ids"),
                 ("logits",), ("negative", "positive", "neutral")),
    "distilbert": Case(distilbert, "AutoModelForSequenceClassification", ("input_ids", "attention_mask"),
                       ("logits",), ("spam", "ham")),
    "bert-features": Case(bert_features, "AutoModel", ("input_ids", "attention_mask", "token_type_ids"),
                          ("last_hidden_state", "pooler_output")),
    "roberta-tokens": Case(roberta_tokens, "AutoModelForTokenClassification", ("input_ids", "attention_mask"),
                           ("logits",)),
    "vit": Case(vit, "AutoModelForImageClassification", ("pixel_values",), ("logits",),
                ("cat", "dog", "bird", "fish")),
}  # fmt: skip


@dataclass(frozen=True)
class Packed:
    folder: Path
    bundle: Path
    output: str


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Packed]:
    """`lambdafit pack FOLDER` once per case, through the CLI."""
    done: dict[str, Packed] = {}

    def get(name: str) -> Packed:
        if name not in done:
            root = tmp_path_factory.mktemp(name)
            folder = root / "checkpoint"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.manual_seed(0)
                CASES[name].build(folder)
            args = ["pack", str(folder), "--name", name, "--recipes", "slim", "--output", str(root)]
            result = CliRunner().invoke(app, args)
            assert result.exit_code == 0, result.output
            done[name] = Packed(folder, root / name, result.output)
        return done[name]

    return get


def reference(folder: Path, auto: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = getattr(transformers, auto).from_pretrained(folder, local_files_only=True)
    return model.eval()


def call(handler: Any, body: Any) -> tuple[int, dict[str, Any]]:
    event = RestEvent.build("POST", "/predict", body=json.dumps(body), headers={"Content-Type": "application/json"})
    result = handler(event, LambdaContext(function_name="t"))
    return result["statusCode"], json.loads(result["body"])


def expected_outputs(case: Case, output: Any) -> dict[str, np.ndarray]:
    return {name: getattr(output, name).detach().numpy() for name in case.outputs}


@pytest.mark.parametrize("name", ["bert", "distilbert", "bert-features", "roberta-tokens"])
def test_text_checkpoint_answers_text_like_torch(packed: Callable[[str], Packed], name: str) -> None:
    case, result = CASES[name], packed(name)
    model_dir = result.bundle / "function" / "model"
    manifest = Manifest.load(model_dir)
    assert tuple(spec.name for spec in manifest.inputs) == case.inputs
    assert all(spec.shape == ("batch", "sequence") for spec in manifest.inputs)
    assert tuple(spec.name for spec in manifest.outputs) == case.outputs
    assert manifest.labels == case.labels
    assert isinstance(manifest.preprocessing, TextPreprocessing)
    assert manifest.preprocessing.ids == "input_ids" and manifest.preprocessing.mask == "attention_mask"
    assert manifest.preprocessing.type_ids == ("token_type_ids" if "token_type_ids" in case.inputs else None)
    assert manifest.preprocessing.max_length == (62 if name == "roberta-tokens" else 64)
    assert (model_dir / "tokenizer.json").is_file()
    wired = ", ".join(case.inputs)
    assert f"are tokenized with the checkpoint's tokenizer into {wired}, truncated to" in result.output

    status, body = call(handler_for(model_dir), {"texts": TEXTS})
    assert status == 200, body
    tokenizer = transformers.AutoTokenizer.from_pretrained(result.folder, local_files_only=True)
    tokens = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        want = expected_outputs(case, reference(result.folder, case.auto)(**tokens))
    for output, value in want.items():
        got = np.array(body["outputs"][output], dtype=np.float32)
        assert got.shape == value.shape, output
        if value.ndim == 3:  # per token: padding positions are the model's own business
            mask = tokens["attention_mask"].numpy().astype(bool)
            got, value = got[mask], value[mask]
        np.testing.assert_allclose(got, value, rtol=1e-4, atol=1e-5)
    if case.labels:
        logits = want["logits"]
        assert [p["label"] for p in body["predictions"]] == [case.labels[i] for i in logits.argmax(-1)]
        assert logits.shape == (len(TEXTS), len(case.labels))


def test_bert_pads_with_its_own_pad_token_and_zero_type_ids(packed: Callable[[str], Packed]) -> None:
    from handlers.codecs import make_codec

    model_dir = packed("bert").bundle / "function" / "model"
    codec = make_codec(Manifest.load(model_dir), model_dir)
    assert codec is not None
    arrays = codec.decode({"texts": ["cold", "the model serves text fast"]})
    tokenizer = transformers.AutoTokenizer.from_pretrained(packed("bert").folder, local_files_only=True)
    tokens = tokenizer(["cold", "the model serves text fast"], padding=True, return_tensors="np")
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        np.testing.assert_array_equal(arrays[name], tokens[name])
    assert arrays["token_type_ids"].dtype == np.int64 and not arrays["token_type_ids"].any()


def test_roberta_pads_with_its_pad_id(packed: Callable[[str], Packed]) -> None:
    from handlers.codecs import make_codec

    model_dir = packed("roberta-tokens").bundle / "function" / "model"
    codec = make_codec(Manifest.load(model_dir), model_dir)
    assert codec is not None
    ids = codec.decode({"texts": ["cold", "the model serves text fast"]})["input_ids"]
    assert ids[0, 0] == 0 and ids[0, -1] == 1  # <s> first, <pad> (id 1) after the short text
    report = packed("roberta-tokens").output
    assert "the endpoint returns per-token logits; their classes: O, B-PER, I-PER, B-LOC, I-LOC" in report


def test_sequence_length_is_dynamic_in_the_exported_graph(packed: Callable[[str], Packed]) -> None:
    result = packed("bert")
    session = onnxruntime.InferenceSession(str(result.bundle / "function" / "model" / "model.onnx"))
    assert [i.shape for i in session.get_inputs()] == [["batch", "sequence"]] * 3
    model = reference(result.folder, "AutoModelForSequenceClassification")
    rng = np.random.default_rng(0)
    for length in (5, 23):
        ids = rng.integers(5, model.config.vocab_size, (2, length))
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        (got,) = session.run(None, feeds)
        with torch.no_grad():
            want = model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).logits.numpy()
        assert got.shape == (2, 3)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_token_ids_longer_than_the_positions_are_a_400(packed: Callable[[str], Packed]) -> None:
    model_dir = packed("bert").bundle / "function" / "model"
    assert Manifest.load(model_dir).dims == {"sequence": DimBounds(1, 64)}
    handler = handler_for(model_dir)
    for length, status in ((64, 200), (65, 400)):
        ids = [[2] + [10] * (length - 2) + [3]]
        inputs = {"input_ids": ids, "attention_mask": [[1] * length], "token_type_ids": [[0] * length]}
        got, body = call(handler, {"inputs": inputs})
        assert got == status, body
    assert (
        body["code"] == "wrong_shape" and "dimension sequence (axis 1) is 65; this model takes 1..64" in body["error"]
    )


def png(pixels: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="RGB").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_vit_answers_images_like_torch(packed: Callable[[str], Packed]) -> None:
    case, result = CASES["vit"], packed("vit")
    model_dir = result.bundle / "function" / "model"
    manifest = Manifest.load(model_dir)
    assert [(s.name, s.shape) for s in manifest.inputs] == [("pixel_values", ("batch", 3, 32, 32))]
    assert manifest.labels == case.labels
    assert manifest.preprocessing == ImagePreprocessing(
        size=(32, 32), input="pixel_values", mode="RGB", scale=1 / 255, mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225), layout="NCHW",
    )  # fmt: skip
    assert 'image requests ({"image": base64}) are resized to 32x32 and normalized as the' in result.output
    images = np.random.default_rng(0).integers(0, 256, (3, 40, 48, 3), dtype=np.uint8)  # resized to 32x32
    status, body = call(handler_for(model_dir), {"images": [png(image) for image in images]})
    assert status == 200, body
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        processor = transformers.ViTImageProcessorPil.from_pretrained(result.folder, local_files_only=True)
    pixels = processor([Image.fromarray(image) for image in images], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        logits = reference(result.folder, case.auto)(pixel_values=pixels).logits.numpy()
    np.testing.assert_allclose(np.array(body["outputs"]["logits"]), logits, rtol=1e-4, atol=1e-5)
    assert [p["label"] for p in body["predictions"]] == [case.labels[i] for i in logits.argmax(-1)]


def checkpoint(tmp_path: Path, build: Callable[[Path], None]) -> Path:
    folder = tmp_path / "checkpoint"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        build(folder)
    return folder


def load(folder: Path, tmp_path: Path, task: str | None = None) -> TorchModel:
    model = load_model(str(folder), LoadOptions(work_dir=tmp_path / "work", task=task))
    assert isinstance(model, TorchModel)
    return model


def gpt2(folder: Path) -> None:
    config = transformers.GPT2Config(vocab_size=64, n_embd=32, n_layer=2, n_head=2, n_positions=32)
    _save(transformers.GPT2LMHeadModel(config), None, folder)


def test_causal_lm_is_refused_with_a_pointer_to_text_generation(tmp_path: Path) -> None:
    folder = checkpoint(tmp_path, gpt2)
    with pytest.raises(ModelLoadError) as caught:
        load(folder, tmp_path)
    message = str(caught.value)
    assert "GPT2LMHeadModel, a text generator" in message and "--task text-generation" in message
    args = ["pack", str(folder), "--name", "gpt", "--task", "text-generation", "--output", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "GPT-2" in result.output and "onnxruntime-genai's model builder" in " ".join(result.output.split())


def test_causal_lm_hidden_states_with_task_feature_extraction(tmp_path: Path) -> None:
    model = load(checkpoint(tmp_path, gpt2), tmp_path, task="feature-extraction")
    assert type(model.module).__name__ == "GPT2Model"
    assert list(model.example_inputs) == ["input_ids", "attention_mask"]
    assert model.preprocessing is None and model.labels == ()
    assert any("has no tokenizer" in note and "clients send token ids" in note for note in model.notes)


def test_pickled_weights_are_refused(tmp_path: Path) -> None:
    folder = checkpoint(tmp_path, bert)
    state = reference(folder, "AutoModelForSequenceClassification").state_dict()
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError) as caught:
        load(folder, tmp_path)
    message = str(caught.value)
    assert "lambdafit loads safetensors, not pickles" in message
    assert "AutoModelForSequenceClassification as M; M.from_pretrained(" in message
    assert "writes model.safetensors" in message and "\n" not in message


def test_missing_weights_are_one_line(tmp_path: Path) -> None:
    folder = checkpoint(tmp_path, bert)
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match=r"has no model\.safetensors: save the model there with save_pretrained"):
        load(folder, tmp_path)


def test_unknown_model_type_asks_for_a_newer_transformers(tmp_path: Path) -> None:
    folder = tmp_path / "future"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert-2030", "architectures": ["Bert2030Model"]}))
    with pytest.raises(ModelLoadError) as caught:
        load(folder, tmp_path)
    assert f"model_type 'bert-2030' is unknown to transformers {transformers.__version__}" in str(caught.value)
    assert "upgrade transformers or export to ONNX yourself" in str(caught.value)


def test_no_architectures_and_no_task(tmp_path: Path) -> None:
    folder = checkpoint(tmp_path, bert)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"architectures": None}))
    with pytest.raises(ModelLoadError, match=r"names no architectures, so the task is unknown: pass --task \(one of "):
        load(folder, tmp_path)
    model = load(folder, tmp_path, task="text-classification")
    assert model.labels == ("negative", "positive", "neutral")


def test_unknown_task_is_refused(tmp_path: Path) -> None:
    folder = checkpoint(tmp_path, bert)
    with pytest.raises(ModelLoadError, match=r"--task 'summarize' is not a task lambdafit packs; use one of text-"):
        load(folder, tmp_path, task="summarize")
    with pytest.raises(LambdafitError, match=r"--task 'summarize' is not one of text-classification, "):
        PackConfig(model=str(folder), name="x", task="summarize")


def test_task_the_checkpoint_was_not_trained_for(tmp_path: Path) -> None:
    folder = checkpoint(tmp_path, bert)
    with pytest.raises(ModelLoadError) as caught:
        load(folder, tmp_path, task="question-answering")
    assert "lacks 2 weights that question-answering needs (qa_outputs.bias, qa_outputs.weight)" in str(caught.value)
    with pytest.raises(ModelLoadError, match=r"a bert checkpoint cannot be loaded for image-classification"):
        load(folder, tmp_path, task="image-classification")


def test_placeholder_labels_are_dropped_with_a_note(tmp_path: Path) -> None:
    folder = checkpoint(tmp_path, bert)
    config = json.loads((folder / "config.json").read_text())
    config["id2label"] = {str(i): f"LABEL_{i}" for i in range(3)}
    (folder / "config.json").write_text(json.dumps(config))
    model = load(folder, tmp_path)
    assert model.labels == ()
    assert any("placeholder names (LABEL_0, ...): pass --labels" in note for note in model.notes)


def test_vocab_txt_only_tokenizer_is_converted_to_tokenizer_json(tmp_path: Path) -> None:
    folder = checkpoint(tmp_path, bert)
    vocab = transformers.AutoTokenizer.from_pretrained(folder).get_vocab()
    (folder / "vocab.txt").write_text("".join(f"{token}\n" for token, _ in sorted(vocab.items(), key=lambda kv: kv[1])))
    (folder / "tokenizer.json").unlink()
    model = load(folder, tmp_path)
    assert model.preprocessing is not None
    shipped = model.preprocessing.files["tokenizer.json"]
    assert shipped.is_file() and shipped.is_relative_to(tmp_path / "work")
    assert any("has no tokenizer.json: built one with transformers' BertTokenizer" in n for n in model.notes)
    assert Tokenizer.from_file(str(shipped)).encode("the model").tokens == ["[CLS]", "the", "model", "[SEP]"]


def test_task_is_only_for_checkpoints(tmp_path: Path) -> None:
    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(b"")
    with pytest.raises(ModelLoadError, match=r"--task fill-mask is for Hugging Face checkpoint folders"):
        load_model(str(onnx_file), LoadOptions(work_dir=tmp_path, task="fill-mask"))


def test_load_checkpoint_is_what_load_model_calls(tmp_path: Path) -> None:
    folder = checkpoint(tmp_path, distilbert)
    model = load_checkpoint(folder, LoadOptions(work_dir=tmp_path / "work"))
    assert list(model.example_inputs) == ["input_ids", "attention_mask"]
    assert model.example_inputs["input_ids"].shape[0] == 2
    assert model.example_inputs["attention_mask"].min() == 0  # the example is padded: the mask matters
