"""`lambdafit.toml` (or `[tool.lambdafit]` in pyproject.toml): every `pack` option in a file.

The keys are PackConfig's fields (`max_drop` or `max-drop`), so the file, the flags and Python callers
share one list of names and one set of defaults. A flag given on the command line wins over the file,
and LAMBDAFIT_PYTHON wins over the file's `python` (argument > environment > file > default). Paths in
the file are relative to the file. `lambdafit init MODEL` writes a commented one from the model's
signature: `render()` below.
"""

from __future__ import annotations

import difflib
import json
import os
import textwrap
import tomllib
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from packager.config import ENV_PYTHON, PackConfig
from packager.errors import LambdafitError

CONFIG_FILE = "lambdafit.toml"
PYPROJECT = "pyproject.toml"
PATH_OPTIONS = ("model", "student", "metric")
"""String options that name a file (`model.onnx`, `file.py:factory`): relative to the config file too."""
REQUIRED = ("model", "name")
COMMENT_WIDTH = 100


def option_names() -> tuple[str, ...]:
    return tuple(item.name for item in fields(PackConfig))


def default_of(name: str) -> Any:
    item = next(item for item in fields(PackConfig) if item.name == name)
    if item.default is not MISSING:
        return item.default
    if item.default_factory is not MISSING:
        return item.default_factory()
    return None


def defaults() -> dict[str, Any]:
    return {name: default_of(name) for name in option_names()}


@dataclass(frozen=True)
class ConfigFile:
    path: Path
    values: dict[str, Any]
    """Options by PackConfig field name, paths already relative to the current folder."""


def find(folder: Path) -> Path | None:
    """lambdafit.toml in `folder`, else its pyproject.toml when that has a [tool.lambdafit] table."""
    candidate = folder / CONFIG_FILE
    if candidate.is_file():
        return candidate
    pyproject = folder / PYPROJECT
    if pyproject.is_file():
        try:
            if "lambdafit" in tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {}):
                return pyproject
        except (OSError, tomllib.TOMLDecodeError):
            return None
    return None


def load(path: Path) -> ConfigFile:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LambdafitError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise LambdafitError(f"{path} is not valid TOML: {exc}") from exc
    table = document.get("tool", {}).get("lambdafit") if path.name == PYPROJECT else document
    if not isinstance(table, dict):
        raise LambdafitError(f"{path} has no [tool.lambdafit] table")
    values = {}
    known = option_names()
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0].replace('_', '-')}?" if close else ""
            raise LambdafitError(
                f"{path}: unknown option {key!r}{hint} (the options are those of lambdafit pack: "
                f"{', '.join(n.replace('_', '-') for n in known)})"
            )
        values[name] = _checked(path, key, name, value)
    return ConfigFile(path, _relative_to(values, path.parent))


def _checked(path: Path, key: str, name: str, value: Any) -> Any:
    """TOML's types against the option's: strings stay strings (python = "3.12", not 3.12)."""
    expected = type(default_of(name))
    if isinstance(value, dict):
        raise LambdafitError(f"{path}: {key} is a table; give it a value such as {key} = ...")
    if expected is bool and not isinstance(value, bool):
        raise LambdafitError(f"{path}: {key} = {value!r} must be true or false")
    if (expected is str or issubclass(expected, StrEnum)) and not isinstance(value, str):
        raise LambdafitError(f'{path}: {key} = {value!r} must be a string, in quotes: {key} = "{value}"')
    return value


def _relative_to(values: dict[str, Any], folder: Path) -> dict[str, Any]:
    paths = {item.name for item in fields(PackConfig) if "Path" in str(item.type)}
    resolved = dict(values)
    for name, value in values.items():
        if not isinstance(value, str) or not value:
            continue
        if name in paths:
            resolved[name] = _under(folder, value)
        elif name in PATH_OPTIONS:
            file, sep, factory = value.rpartition(":")
            resolved[name] = (
                f"{_under(folder, file)}:{factory}" if sep and file.endswith(".py") else _under(folder, value)
            )
    return resolved


def _under(folder: Path, value: str) -> str:
    path = Path(value).expanduser()
    if path.is_absolute():
        return str(path)
    return os.path.relpath(folder / path)


def build(given: Mapping[str, Any], file: ConfigFile | None, environ: Mapping[str, str] = os.environ) -> PackConfig:
    """The PackConfig from the flags given on the command line, over the environment, over the file."""
    values = dict(file.values) if file is not None else {}
    if environ.get(ENV_PYTHON):
        values["python"] = environ[ENV_PYTHON]
    values |= given
    missing = [name for name in REQUIRED if values.get(name) in (None, "")]
    if missing:
        where = f"in {file.path}" if file is not None else f"in a {CONFIG_FILE} (lambdafit init MODEL writes one)"
        raise LambdafitError(f"give the model and --name on the command line, or {' and '.join(missing)} {where}")
    return PackConfig(**values)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, StrEnum):
        return json.dumps(value.value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return json.dumps(str(value))


@dataclass(frozen=True)
class OptionHelp:
    flag: str
    help: str


def render(
    model: str,
    name: str,
    described: list[str],
    options: Mapping[str, OptionHelp],
    suggested: Mapping[str, Any],
    notes: list[str],
) -> str:
    """A commented lambdafit.toml: `model` and `name` set, every other option commented out at its default
    (or set, when `suggested` holds a value for it), each with its flag and help text."""
    lines = [
        f"# lambdafit.toml, written by `lambdafit init {model}`.",
        "# `lambdafit pack` reads it from the current folder (or --config FILE). A flag on the command line wins",
        f"# over this file, and {ENV_PYTHON} over `python`. Paths are relative to this file.",
        "#",
        *[f"# {line}" for line in described],
        "",
        f"model = {toml_value(model)}",
        f"name = {toml_value(name)}",
    ]
    for note in notes:
        lines += ["", *[f"# {part}" for part in note.splitlines()]]
    for field_name in option_names():
        if field_name in REQUIRED:
            continue
        option = options.get(field_name, OptionHelp(f"--{field_name.replace('_', '-')}", ""))
        key = field_name.replace("_", "-")
        comment = f"{option.help}  ({option.flag})" if option.help else f"({option.flag})"
        lines += ["", *textwrap.wrap(comment, COMMENT_WIDTH, initial_indent="# ", subsequent_indent="# ")]
        if field_name in suggested:
            lines.append(f"{key} = {toml_value(suggested[field_name])}")
            continue
        default = default_of(field_name)
        lines.append(f"# {key} = {toml_value(default)}" if default not in (None, ()) else f"# {key} =")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ModelSummary:
    described: list[str]
    suggested: dict[str, Any]
    notes: list[str]


DATA_NAMES = {"eval_data": ("eval.npz",), "calibration_data": ("calibration.npz", "train.npz")}
"""Data files `init` looks for beside the model, by the option they suit."""
IMAGE_CHANNELS = (1, 3)


def summarize(model: str, folder: Path) -> ModelSummary:
    """What `init` says about MODEL: its signature (exported to ONNX when it is a torch factory), data
    files found beside it, and a preprocessing suggestion for an image-shaped input. Paths relative to
    `folder`, where the file goes."""
    import tempfile

    from packager.export import export_torch
    from packager.load import LoadOptions, OnnxModel, TorchModel, load_model
    from packager.signature import read_signature

    with tempfile.TemporaryDirectory(prefix="lambdafit-init-") as tmp:
        loaded = load_model(model, LoadOptions(work_dir=Path(tmp)))
        if isinstance(loaded, OnnxModel):
            onnx_path = loaded.path
        else:
            assert isinstance(loaded, TorchModel)
            onnx_path = Path(tmp) / "fp32.onnx"
            export_torch(loaded, onnx_path)
        inputs, outputs = read_signature(onnx_path)
    described = ["The model takes:", *[f"    {spec.describe()}" for spec in inputs], "and returns:"]
    described += [f"    {spec.describe()}" for spec in outputs]
    if loaded.labels:
        described.append(f"with {len(loaded.labels)} class labels of its own ({', '.join(loaded.labels[:5])}, ...)")
    model_file = Path(model.rpartition(":")[0] if ".py:" in model else model)
    suggested: dict[str, Any] = {}
    for option, names in DATA_NAMES.items():
        for file_name in names:
            candidate = model_file.parent / file_name
            if candidate.is_file():
                suggested[option] = os.path.relpath(candidate.resolve(), folder.resolve())
                break
    notes = []
    for spec in inputs:
        image = _image_like(spec.shape)
        if image is not None and loaded.preprocessing is None:
            size, layout, mode = image
            example = json.dumps(
                {"kind": "image", "size": list(size), "mode": mode, "layout": layout, "input": spec.name}
            )
            notes.append(
                f"Input {spec.name} looks like images. To take PNG/JPEG requests (curl --data-binary @cat.jpg), save\n"
                f"  {example}\nas preprocess.json (add mean and std if the model was trained normalized; the format is\n"
                'docs/preprocess.md) and set  preprocess = "preprocess.json"'
            )
    return ModelSummary(described, suggested, notes)


def _image_like(shape: tuple[Any, ...]) -> tuple[tuple[int, int], str, str] | None:
    """((height, width), layout, mode) for a 4-d input with 1 or 3 channels and a known height and width."""
    if len(shape) != 4:
        return None
    for layout, channel, hw in (("NCHW", 1, (2, 3)), ("NHWC", 3, (1, 2))):
        height, width = shape[hw[0]], shape[hw[1]]
        if shape[channel] in IMAGE_CHANNELS and isinstance(height, int) and isinstance(width, int):
            return (height, width), layout, "L" if shape[channel] == 1 else "RGB"
    return None


def write_init(
    model: str, target: Path, options: Mapping[str, OptionHelp], name: str | None = None, force: bool = False
) -> Path:
    """`lambdafit init`: the commented file for MODEL at `target` (lambdafit.toml)."""
    if target.exists() and not force:
        raise LambdafitError(f"{target} already exists; pass --force to replace it")
    folder = target.parent
    summary = summarize(model, folder)
    spec_file = model.rpartition(":")[0] if ".py:" in model else model
    relative = os.path.relpath(Path(spec_file).resolve(), folder.resolve())
    model_text = f"{relative}:{model.rpartition(':')[2]}" if ".py:" in model else relative
    stem = (
        Path(spec_file).resolve().parent.name if Path(spec_file).stem in ("model", "__init__") else Path(spec_file).stem
    )
    guessed = name or "".join(c if c.isalnum() else "-" for c in stem).strip("-") or "model"
    if not guessed[0].isalpha():
        guessed = "m-" + guessed
    text = render(model_text, guessed, summary.described, options, summary.suggested, summary.notes)
    tomllib.loads(text)  # what was written must read back
    target.write_text(text, encoding="utf-8")
    return target
