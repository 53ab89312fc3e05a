"""`pack --task text-generation`'s orchestration with fake collaborators (no builder, no probe process, no
wheel index): what it refuses, what it chooses, and what the bundle and its template say."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from handlers.contract import ENV_EXEC_WRAPPER, STREAM_WRAPPER_FILE, ApiKind
from handlers.manifest import Manifest, Task
from packager.config import PackConfig
from packager.errors import LambdafitError, ModelLoadError, NoFitError, RecipeError
from packager.generate.checkpoint import count_parameters, is_generation, read_checkpoint
from packager.generate.measure import EvalOptions, ProbeResult
from packager.generate.pipeline import GenerationCollaborators, pack_generation
from packager.generate.recipes import GenerationRecipe
from packager.wheels import WheelSet

SIZES = {"fp32": 4_000_000, "int8": 1_000_000, "int4": 500_000, "int4-qembed": 300_000}
PERPLEXITY = {"fp32": 50.0, "int8": 50.1, "int4": 52.0, "int4-qembed": 60.0}
SPEED = {"fp32": 100.0, "int8": 200.0, "int4": 300.0, "int4-qembed": 320.0}
BUILT: list[str] = []


def checkpoint(folder: Path, architecture: str = "LlamaForCausalLM", tied: bool = False, **files: str) -> Path:
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    config = {"architectures": [architecture], "model_type": "llama", "max_position_embeddings": 64,
              "tie_word_embeddings": tied}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    save_file({"embed": np.zeros((16, 4), np.float32), "head": np.zeros((4, 16), np.float32)},
              str(folder / "model.safetensors"))  # fmt: skip
    (folder / "tokenizer.json").write_text("{}")
    (folder / "chat_template.jinja").write_text("{{ messages }}")
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def fake_build(source: Path, recipe: GenerationRecipe, out: Path, cache: Path) -> Path:
    BUILT.append(recipe.name)
    if recipe.name == "int8" and (source / "broken-int8").exists():
        raise RuntimeError("the builder fell over")
    out.mkdir(parents=True)
    (out / "model.onnx").write_bytes(b"graph")
    (out / "model.onnx.data").write_bytes(bytes(SIZES[recipe.name]))
    genai = {"model": {"context_length": 64, "eos_token_id": [2, 7], "type": "llama", "vocab_size": 16}}
    (out / "genai_config.json").write_text(json.dumps(genai))
    (out / "tokenizer.json").write_text("{}")
    return out


def fake_probe(folder: Path, text: Path, options: EvalOptions, work: Path) -> ProbeResult:
    name = folder.name
    picks = np.zeros(100, np.int32)
    picks[: int(PERPLEXITY[name] - 50)] = 1
    numbers = {"nll": 100 * np.log(PERPLEXITY[name]), "tokens": 100, "ttft_ms": 5.0, "tokens_per_s": SPEED[name],
               "ms_per_token": [1000 / SPEED[name]] * 3, "load_ms": 50.0, "peak_rss_mb": 300.0}  # fmt: skip
    return ProbeResult(numbers, picks)


def fakes() -> GenerationCollaborators:
    return GenerationCollaborators(
        wheels=lambda python, arch, extras: WheelSet((), ("onnxruntime-genai==0.18.0",), (2, 17)),
        build=fake_build,
        probe=fake_probe,
    )


def config(tmp_path: Path, folder: Path, **changes: Any) -> PackConfig:
    text = tmp_path / "heldout.txt"
    text.write_text("held-out text")
    values: dict[str, Any] = {"model": str(folder), "name": "tiny", "output_dir": tmp_path / "build",
                              "eval_data": text, "python": "3.12", "task": "text-generation"}  # fmt: skip
    return PackConfig(**(values | changes))


@pytest.fixture(autouse=True)
def _clear() -> None:
    BUILT.clear()


def test_chooses_the_fastest_within_the_drop_and_writes_a_streaming_bundle(tmp_path: Path) -> None:
    folder = checkpoint(tmp_path / "ckpt")
    result = pack_generation(config(tmp_path, folder, max_drop=0.05), collaborators=fakes())
    assert BUILT == ["fp32", "int8", "int4", "int4-qembed"]
    verdicts = {v.candidate.recipe: v for v in result.fit.verdicts}
    assert result.fit.chosen.recipe == "int4"  # int4-qembed is faster but 20% worse in perplexity
    assert verdicts["int4-qembed"].reason.startswith("drop 20.00 pts")
    assert verdicts["int4"].drop == pytest.approx(0.04)
    bundle = result.bundle
    manifest = Manifest.load(bundle / "function/model")
    assert manifest.task is Task.TEXT_GENERATION and manifest.recipe == "int4" and manifest.generation is not None
    assert manifest.generation.context_length == 64 and manifest.generation.eos_token_ids == (2, 7)
    assert set(manifest.generation.files) == {"model.onnx", "model.onnx.data", "genai_config.json", "tokenizer.json"}
    assert manifest.sha256 == manifest.generation.digest and manifest.inputs == ()
    report = json.loads((bundle / "report.json").read_text())
    assert report["candidates"][2]["metrics"]["agreement"] == pytest.approx(0.98)
    assert report["candidates"][2]["metrics"]["perplexity"] == pytest.approx(52.0)
    template = (bundle / "template.yaml").read_text()
    assert "ResponseTransferMode: RESPONSE_STREAM" in template and "MemorySize: 512" in template
    app = json.loads((bundle / "bundle.json").read_text())["app"]
    assert app["task"] == "text-generation" and 60 <= app["timeout_s"] <= 900
    assert {p.name for p in (bundle / "events").iterdir()} == {
        f"{n}-rest.json" for n in ("chat", "chat-stream", "completion", "models", "health")
    }
    assert "| greedy agree |" in (bundle / "report.md").read_text()


def test_a_zip_behind_a_function_url_starts_its_runtime_through_the_exec_wrapper(tmp_path: Path) -> None:
    folder = checkpoint(tmp_path / "ckpt", tied=True)
    result = pack_generation(
        config(tmp_path, folder, package_type="zip", api="url", recipes=("int4",)), collaborators=fakes()
    )
    assert BUILT == ["fp32", "int4"]
    wrapper = result.bundle / "function" / STREAM_WRAPPER_FILE
    assert os.access(wrapper, os.X_OK) and "exec python3 -m handlers.bootstrap" in wrapper.read_text()
    template = (result.bundle / "template.yaml").read_text()
    assert f"{ENV_EXEC_WRAPPER}: /var/task/{STREAM_WRAPPER_FILE}" in template
    assert "InvokeMode: RESPONSE_STREAM" in template


def test_an_http_api_buffers_within_29_seconds(tmp_path: Path) -> None:
    folder = checkpoint(tmp_path / "ckpt", tied=True)
    result = pack_generation(config(tmp_path, folder, api=ApiKind.HTTP), collaborators=fakes())
    assert BUILT == ["fp32", "int8", "int4"]  # tied embeddings: int4 quantizes the embedding already
    assert any("HTTP APIs cannot stream" in note for note in result.report.notes)
    assert json.loads((result.bundle / "bundle.json").read_text())["app"]["timeout_s"] == 29
    assert not (result.bundle / "function" / STREAM_WRAPPER_FILE).exists()
    assert "ENTRYPOINT" not in (result.bundle / "function/Dockerfile").read_text()


def test_a_failed_candidate_is_reported_and_nothing_fitting_exits_with_the_table(tmp_path: Path) -> None:
    folder = checkpoint(tmp_path / "ckpt", **{"broken-int8": ""})
    result = pack_generation(config(tmp_path, folder, max_drop=0.01, recipes=("int8", "int4")), collaborators=fakes())
    verdicts = {v.candidate.recipe: v.reason for v in result.fit.verdicts}
    assert verdicts["int8"] == "failed: the builder fell over" and result.fit.chosen.recipe == "fp32"
    with pytest.raises(NoFitError) as caught:
        pack_generation(config(tmp_path, folder, budget="1MB", force=True), collaborators=fakes())
    assert caught.value.rejection is not None


@pytest.mark.parametrize(
    ("architecture", "files", "message"),
    [
        ("GPT2LMHeadModel", {}, "GPT-2 .* is not among the architectures"),
        ("BertForMaskedLM", {}, "does not export as a text decoder"),
    ],
)
def test_unsupported_checkpoints_are_refused_before_building(
    tmp_path: Path, architecture: str, files: dict[str, str], message: str
) -> None:
    folder = checkpoint(tmp_path / "ckpt", architecture=architecture, **files)
    with pytest.raises(ModelLoadError, match=message):
        pack_generation(config(tmp_path, folder), collaborators=fakes())
    assert BUILT == []


def test_missing_files_and_options_that_do_not_apply(tmp_path: Path) -> None:
    folder = checkpoint(tmp_path / "ckpt")
    (folder / "tokenizer.json").unlink()
    with pytest.raises(ModelLoadError, match=r"no tokenizer\.json"):
        read_checkpoint(folder)
    (folder / "tokenizer.json").write_text("{}")
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="pickle"):
        read_checkpoint(folder)
    with pytest.raises(LambdafitError, match="does not take --model-store"):
        pack_generation(config(tmp_path, folder, model_store="s3://bucket/prefix"), collaborators=fakes())
    with pytest.raises(RecipeError, match="unknown text-generation recipe int3"):
        config(tmp_path, folder, recipes=("int3",))


def test_a_causal_lm_folder_is_text_generation_without_asking(tmp_path: Path) -> None:
    folder = checkpoint(tmp_path / "ckpt")
    assert is_generation(config(tmp_path, folder, task=None))
    assert not is_generation(config(tmp_path, folder, task="feature-extraction"))
    assert count_parameters(folder) == 128
    assert read_checkpoint(folder).chat_template
