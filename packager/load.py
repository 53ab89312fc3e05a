"""Load what the user hands us, as an ONNX file or a torch module to export:

- an `.onnx` file;
- a factory `path/to/file.py:function` returning a torch module, or a fitted scikit-learn, LightGBM or
  XGBoost estimator or pipeline, with example inputs (converted here with skl2onnx / onnxmltools);
- a Hugging Face checkpoint folder (config.json, safetensors, tokenizer files), loaded with transformers;
- a pickled estimator (`.joblib`, `.pkl`) only with `--trust-pickle`: unpickling runs code, so it
  happens here, at pack time, and the bundle ships ONNX.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from handlers.errors import reason
from packager.errors import ModelLoadError

if TYPE_CHECKING:
    import torch

    from handlers.manifest import DimBounds
    from packager.preprocess import PreprocessingFiles


PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")


@dataclass(frozen=True)
class LoadOptions:
    work_dir: Path
    """Where converted models are written (the pack's temporary folder)."""
    trust_pickle: bool = False
    task: str | None = None
    """The Hugging Face task to load a checkpoint for (packager.convert_hf.HfTask), inferred when None."""


@dataclass(frozen=True)
class OnnxModel:
    path: Path
    labels: tuple[str, ...] = ()
    preprocessing: PreprocessingFiles | None = None
    """How clients may send requests other than tensors (a checkpoint's tokenizer), when known."""
    notes: tuple[str, ...] = ()
    dims: dict[str, DimBounds] = field(default_factory=dict)
    """Bounds the model itself sets on symbolic dimensions (a checkpoint's positions); `--dim` overrides."""


@dataclass(frozen=True)
class TorchModel:
    """A torch module and example inputs, in the order the exported graph takes them.

    The first `positional` inputs are passed positionally, the rest by name (`forward(**kwargs)`)."""

    module: torch.nn.Module
    example_inputs: dict[str, torch.Tensor]
    source: str
    labels: tuple[str, ...] = field(default=())
    positional: int | None = None
    """How many inputs go positionally (None: all of them)."""
    output_names: tuple[str, ...] | None = None
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)
    """Axes beyond the batch that may change size, by input: declared by the factory or seen to differ
    between two examples."""
    preprocessing: PreprocessingFiles | None = None
    """How clients may send requests other than tensors (a checkpoint's tokenizer), when known."""
    notes: tuple[str, ...] = ()
    dims: dict[str, DimBounds] = field(default_factory=dict)
    """Bounds the model itself sets on symbolic dimensions (a checkpoint's positions); `--dim` overrides."""

    def call(self, module: torch.nn.Module, tensors: Sequence[torch.Tensor]) -> Any:
        """Run `module` (this model or a pruned copy) on tensors in input order."""
        count = len(tensors) if self.positional is None else self.positional
        names = list(self.example_inputs)
        return module(*tensors[:count], **dict(zip(names[count:], tensors[count:], strict=True)))


LoadedModel = OnnxModel | TorchModel


def load_model(spec: str, options: LoadOptions) -> LoadedModel:
    path_text, sep, function = spec.rpartition(":")
    if sep and path_text.endswith(".py") and function.isidentifier():
        return load_factory(Path(path_text), function, options)
    path = Path(spec)
    if path.is_dir() and (path / "config.json").is_file():
        from packager.convert_hf import load_checkpoint

        return load_checkpoint(path, options)
    if options.task is not None:
        raise ModelLoadError(
            f"--task {options.task} is for Hugging Face checkpoint folders (with config.json); {spec} is not one"
        )
    if path.suffix.lower() in PICKLE_SUFFIXES:
        from packager.convert_sklearn import load_pickle

        return load_pickle(path, options)
    return load_onnx(path, options)


def load_onnx(path: Path, options: LoadOptions) -> OnnxModel:
    """An .onnx file, checked; weights stored as external data are merged into one file (up to 2 GB,
    protobuf's limit), so the bundle ships one model file with one checksum."""
    import onnx
    from onnx.external_data_helper import uses_external_data

    source = path
    if not path.exists():
        raise ModelLoadError(f"model {path} does not exist")
    if not path.is_file():
        raise ModelLoadError(
            f"model {path} is not a file: give an .onnx file, a folder with config.json, or a factory such as model.py:build"
        )
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ModelLoadError(
            f"{path} is not a valid ONNX model ({reason(exc)}); export it again, or give a torch factory file.py:build"
        ) from exc
    notes: tuple[str, ...] = ()
    if any(uses_external_data(t) for t in model.graph.initializer):
        try:
            onnx.load_external_data_for_model(model, str(path.parent))
        except (OSError, ValueError) as exc:
            raise ModelLoadError(
                f"{path} keeps its weights in external data that cannot be read: {reason(exc)}"
            ) from exc
        if model.ByteSize() >= 2**31 - 1:
            raise ModelLoadError(
                f"{path} holds more than 2 GB of weights: lambdafit ships models up to 2 GB as one file"
            )
        merged = options.work_dir / "merged.onnx"
        onnx.save(model, str(merged))
        notes = (f"merged {path.name}'s external data into one file",)
        path = merged
    try:
        onnx.checker.check_model(str(path))
    except Exception as exc:
        raise ModelLoadError(
            f"{path} is not a valid ONNX model ({reason(exc)}); export it again, or give a torch factory file.py:build"
        ) from exc
    initializers = {tensor.name for tensor in model.graph.initializer}
    if all(value.name in initializers for value in model.graph.input):
        raise ModelLoadError(
            f"{source} takes no inputs (its graph has none, or every one has a value in its initializers, so it "
            "computes a constant): export the model with its inputs as graph inputs"
        )
    return OnnxModel(path=path, notes=notes)


def load_factory(path: Path, function: str, options: LoadOptions) -> LoadedModel:
    """Run the user's factory: `(model, example)` or `(model, example, options)`, weights loaded or fitted.

    For a torch module the example is a tensor, a tuple or list of tensors (positional arguments) or a
    dict of forward()'s argument names to tensors; options may hold `dynamic_axes` ({input: {axis: name}}),
    `also` (a second example: the axes whose sizes differ are dynamic), `labels` and `output_names`."""
    if not path.is_file():
        raise ModelLoadError(f"factory file {path} does not exist")
    source = f"{path}:{function}"
    module_name = f"_lambdafit_factory_{abs(hash(path.resolve()))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"cannot import {path} as Python")
    code = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = code
    try:
        spec.loader.exec_module(code)
        factory = getattr(code, function, None)
        if not callable(factory):
            raise ModelLoadError(f"{path} has no function {function}()")
        result = factory()
    except ModelLoadError:
        raise
    except SystemExit as exc:
        raise ModelLoadError(f"factory {source} called sys.exit({exc.code!r}) instead of returning a model") from None
    except Exception as exc:
        raise ModelLoadError(f"factory {source} raised {type(exc).__name__}: {reason(exc)}") from exc
    finally:
        sys.modules.pop(module_name, None)
    if not (isinstance(result, tuple) and len(result) in (2, 3)):
        raise ModelLoadError(
            f"factory {source} must return (model, example_inputs) or (model, example_inputs, options); "
            f"got {type(result).__name__}"
        )
    model, example = result[0], result[1]
    extra = result[2] if len(result) == 3 else {}
    if not isinstance(extra, dict):
        raise ModelLoadError(
            f"factory {source}: the third element must be a dict of options, got {type(extra).__name__}"
        )
    if _is_estimator(model):
        from packager.convert_sklearn import convert_estimator

        return convert_estimator(model, example, source, options)
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(model, torch.nn.Module):
        raise ModelLoadError(
            f"factory {source} returned a {type(model).__name__}: give a torch.nn.Module or a fitted scikit-learn, "
            "LightGBM or XGBoost estimator"
        )
    return torch_model(model, example, extra, source)


def torch_model(module: torch.nn.Module, example: Any, extra: dict[str, Any], source: str) -> TorchModel:
    inputs, positional = _named_inputs(module, example, source)
    unknown = sorted(set(extra) - {"dynamic_axes", "also", "labels", "output_names"})
    if unknown:
        raise ModelLoadError(
            f"factory {source}: unknown options {unknown}; it takes dynamic_axes, also, labels, output_names"
        )
    dynamic = {
        name: {int(a): str(n) for a, n in axes.items()}
        for name, axes in (extra.get("dynamic_axes") or getattr(module, "dynamic_axes", None) or {}).items()
    }
    if "also" in extra:
        other, _ = _named_inputs(module, extra["also"], source)
        for name, tensor in inputs.items():
            second = other.get(name)
            if second is None or second.dim() != tensor.dim():
                raise ModelLoadError(f"factory {source}: the second example's {name} does not match the first")
            for axis in range(1, tensor.dim()):
                if second.shape[axis] != tensor.shape[axis]:
                    dynamic.setdefault(name, {})[axis] = f"{name}_{axis}"
    bad = sorted(set(dynamic) - set(inputs))
    if bad:
        raise ModelLoadError(f"factory {source}: dynamic_axes names {bad}, but the inputs are {list(inputs)}")
    labels = extra.get("labels") or getattr(module, "labels", ()) or ()
    names = extra.get("output_names") or getattr(module, "output_names", None)
    return TorchModel(
        module=module.eval(),
        example_inputs=inputs,
        source=source,
        labels=tuple(str(label) for label in labels),
        positional=positional,
        output_names=tuple(str(n) for n in names) if names else None,
        dynamic_axes=dynamic,
    )


def _is_estimator(model: Any) -> bool:
    """scikit-learn's estimator API, which LightGBM's and XGBoost's sklearn wrappers follow too."""
    return callable(getattr(model, "fit", None)) and callable(getattr(model, "get_params", None))


def _named_inputs(module: Any, example: Any, source: str) -> tuple[dict[str, Any], int | None]:
    """The example as {input name: tensor} in call order, and how many go positionally."""
    import torch

    parameters = [
        p for p in inspect.signature(module.forward).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]  # fmt: skip
    names = [p.name for p in parameters]
    if isinstance(example, torch.Tensor):
        example = (example,)
    if isinstance(example, tuple | list):
        if not example or not all(isinstance(v, torch.Tensor) for v in example):
            raise ModelLoadError(
                f"factory {source}: the example must be tensors, got {[type(v).__name__ for v in example]}"
            )
        labels = names[: len(example)] if len(names) >= len(example) else [f"input_{i}" for i in range(len(example))]
        return dict(zip(labels, example, strict=True)), None
    if isinstance(example, dict):
        if not example or not all(isinstance(v, torch.Tensor) for v in example.values()):
            raise ModelLoadError(f"factory {source}: the example dict must map forward()'s argument names to tensors")
        accepts_kwargs = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(module.forward).parameters.values())
        unknown = [k for k in example if k not in names]
        if unknown and not accepts_kwargs:
            raise ModelLoadError(
                f"factory {source}: example keys {unknown} are not arguments of {type(module).__name__}.forward(), "
                f"which takes {names}: key the example by those names, or give a tuple in their order"
            )
        ordered = sorted(example, key=lambda k: names.index(k) if k in names else len(names))
        return {str(k): example[k] for k in ordered}, 0
    raise ModelLoadError(
        f"factory {source} returned example inputs of type {type(example).__name__}: "
        "give a tensor, a tuple or list of tensors, or a dict of forward() argument name -> tensor"
    )
