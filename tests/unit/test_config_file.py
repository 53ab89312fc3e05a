"""lambdafit.toml: one list of options (PackConfig's fields) for the file, the flags and Python."""

from __future__ import annotations

import inspect
import re
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest
import typer

from packager import config_file
from packager.cli import app, option_help, pack
from packager.config import PackConfig
from packager.errors import LambdafitError


def test_every_pack_option_is_a_flag_with_the_configs_default() -> None:
    parameters = inspect.signature(pack).parameters
    command = typer.main.get_command(app).commands["pack"]  # type: ignore[attr-defined]
    flags = {param.name: param for param in command.params}
    for item in fields(PackConfig):
        assert item.name in parameters, f"PackConfig.{item.name} has no pack flag"
        default = config_file.default_of(item.name)
        flag_default = flags[item.name].default
        if item.name == "python" or default in (None, ()):
            assert flag_default in (None, [], ()), item.name  # the environment or "not set"
        elif isinstance(default, tuple):
            assert flag_default in (",".join(default), list(default)), item.name
        else:
            assert flag_default == default, item.name
    extra = set(parameters) - set(config_file.option_names()) - {"ctx"}
    assert extra == {"config", "as_json"}


def write(tmp_path: Path, text: str, name: str = "lambdafit.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_file_reads_hyphens_or_underscores_and_resolves_paths_against_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "proj").mkdir()
    path = write(tmp_path / "proj", 'model = "m.py:build"\nname = "x"\neval-data = "data/eval.npz"\nmax_drop = 0.02\n'
                 'recipes = ["slim", "slim+int8-static"]\nstudent = "/abs/s.py:small"\nallow-slower = true\n')  # fmt: skip
    loaded = config_file.load(path)
    assert loaded.values == {
        "model": "proj/m.py:build",
        "name": "x",
        "eval_data": "proj/data/eval.npz",
        "max_drop": 0.02,
        "recipes": ["slim", "slim+int8-static"],
        "student": "/abs/s.py:small",
        "allow_slower": True,
    }
    config = config_file.build({}, loaded, environ={})
    assert config.eval_data == Path("proj/data/eval.npz") and config.recipes == ("slim", "slim+int8-static")


def test_a_flag_beats_the_environment_which_beats_the_file(tmp_path: Path) -> None:
    loaded = config_file.load(write(tmp_path, 'model = "a.onnx"\nname = "x"\npython = "3.13"\nmax-drop = 0.05\n'))
    assert config_file.build({}, loaded, environ={}).python == "3.13"
    assert config_file.build({}, loaded, environ={"LAMBDAFIT_PYTHON": "3.11"}).python == "3.11"
    flagged = config_file.build({"python": "3.12", "max_drop": 0.0}, loaded, environ={"LAMBDAFIT_PYTHON": "3.11"})
    assert (flagged.python, flagged.max_drop) == ("3.12", 0.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('model = "a.onnx"\nname = "x"\nmax-dorp = 0.1\n', "unknown option 'max-dorp'; did you mean max-drop?"),
        ('model = "a.onnx"\nname = "x"\npython = 3.12\n', 'python = 3.12 must be a string, in quotes: python = "3.12"'),
        ('model = "a.onnx"\nname = "x"\ntracing = "yes"\n', "tracing = 'yes' must be true or false"),
        ('model = "a.onnx"\nname = "x"\n[recipes]\n', "recipes is a table"),
        ("model = \n", "is not valid TOML"),
    ],
)
def test_mistakes_in_the_file_say_where_and_how_to_fix_them(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(LambdafitError, match=r"lambdafit\.toml") as caught:
        config_file.load(write(tmp_path, text))
    assert message in str(caught.value)


def test_pyproject_tool_table_is_found_when_there_is_no_lambdafit_toml(tmp_path: Path) -> None:
    assert config_file.find(tmp_path) is None
    write(tmp_path, '[project]\nname = "p"\n', "pyproject.toml")
    assert config_file.find(tmp_path) is None
    path = write(tmp_path, '[project]\nname = "p"\n[tool.lambdafit]\nmodel = "m.onnx"\nname = "p"\n', "pyproject.toml")
    assert config_file.find(tmp_path) == path
    assert config_file.load(path).values["name"] == "p"
    toml = write(tmp_path, 'model = "n.onnx"\nname = "q"\n')
    assert config_file.find(tmp_path) == toml


def test_without_model_and_name_the_error_says_where_they_go(tmp_path: Path) -> None:
    with pytest.raises(LambdafitError, match="lambdafit init MODEL writes one"):
        config_file.build({}, None, environ={})
    loaded = config_file.load(write(tmp_path, 'model = "a.onnx"\n'))
    with pytest.raises(LambdafitError, match=r"or name in .*lambdafit.toml"):
        config_file.build({}, loaded, environ={})


def test_the_rendered_file_lists_every_option_commented_at_its_default_and_reads_back() -> None:
    text = config_file.render(
        "model.py:build",
        "digits",
        ["The model takes:", "    x: float32[batch, 64]"],
        option_help(),
        {"eval_data": "eval.npz"},
        ["a note\non two lines"],
    )
    assert tomllib.loads(text) == {"model": "model.py:build", "name": "digits", "eval-data": "eval.npz"}
    for name in config_file.option_names():
        assert name.replace("_", "-") in text, name
    assert "# largest quality drop allowed, as a fraction (0.01 = 1 point)  (--max-drop)\n# max-drop = 0.01" in text
    assert '# recipes = ["auto"]' in text and '# api = "rest"' in text and "# tracing = false" in text
    assert "#     x: float32[batch, 64]" in text and "# a note\n# on two lines" in text
    settings = [line.removeprefix("# ") for line in text.splitlines() if re.match(r"(# )?[a-z-]+ = ", line)]
    uncommented = "\n".join(settings)
    tomllib.loads(uncommented)  # every default, uncommented, is valid TOML


def test_init_suggests_an_image_preprocessing_for_image_shaped_inputs() -> None:
    assert config_file._image_like(("batch", 3, 224, 224)) == ((224, 224), "NCHW", "RGB")
    assert config_file._image_like(("batch", 28, 28, 1)) == ((28, 28), "NHWC", "L")
    assert config_file._image_like(("batch", 64)) is None
    assert config_file._image_like(("batch", 3, "h", "w")) is None
