"""Load what the user hands us, as an ONNX file or a torch module to export:

- an `.onnx` file;
- a factory `path/to/file.py:function` returning a torch module, or a fitted scikit-learn, LightGBM or
  XGBoost estimator or pipeline, with example inputs (converted here with skl2onnx / onnxmltools);
- a Hugging Face checkpoint folder (config.json, safetensors, tokenizer files), exported with Optimum;
- a pickled estimator (`.joblib`, `.pkl`) only with `--trust-pickle`: unpickling runs code, so it
  happens here, at pack time, and the bundle ships ONNX.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packager.errors import ModelLoadError

if TYPE_CHECKING:
    import torch

    from packager.preprocess import PreprocessingFiles


PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")


@dataclass(frozen=True)
class LoadOptions:
    work_dir: Path
    """Where converted models are written (the pack's temporary folder)."""
    trust_pickle: bool = False
    task: str | None = None
    """The Hugging Face task to export for (text-classification, ...), inferred when None."""


@dataclass(frozen=True)
class OnnxModel:
    path: Path
    labels: tuple[str, ...] = ()
    preprocessing: PreprocessingFiles | None = None
    """How clients may send requests other than tensors (a checkpoint's tokenizer), when known."""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class TorchModel:
    module: torch.nn.Module
    example_inputs: dict[str, torch.Tensor]
    source: str
    labels: tuple[str, ...] = field(default=())


LoadedModel = OnnxModel | TorchModel


def load_model(spec: str, options: LoadOptions) -> LoadedModel:
    path_text, sep, function = spec.rpartition(":")
    if sep and path_text.endswith(".py") and function.isidentifier():
        return load_factory(Path(path_text), function, options)
    path = Path(spec)
    if path.is_dir() and (path / "config.json").is_file():
        from packager.convert_hf import load_checkpoint

        return load_checkpoint(path, options)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        from packager.convert_sklearn import load_pickle

        return load_pickle(path, options)
    return load_onnx(path)


def load_onnx(path: Path) -> OnnxModel:
    import onnx

    if not path.exists():
        raise ModelLoadError(f"model {path} does not exist")
    if not path.is_file():
        raise ModelLoadError(f"model {path} is not a file: give an .onnx file or a factory such as model.py:build")
    try:
        model = onnx.load(str(path), load_external_data=False)
        onnx.checker.check_model(model)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(
            f"{path} is not a valid ONNX model ({reason}); export it again, or give a torch factory file.py:build"
        ) from exc
    if not model.graph.input:
        raise ModelLoadError(f"{path} has no graph inputs; lambdafit serves models that take inputs")
    return OnnxModel(path=path)


def load_factory(path: Path, function: str, options: LoadOptions) -> LoadedModel:
    """Run the user's factory: it returns `(model, example_inputs)` with its weights loaded or fitted."""
    import torch

    if not path.is_file():
        raise ModelLoadError(f"factory file {path} does not exist")
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
    except Exception as exc:
        raise ModelLoadError(f"factory {path}:{function} raised {type(exc).__name__}: {exc}") from exc
    finally:
        sys.modules.pop(module_name, None)
    if isinstance(result, tuple) and len(result) == 2 and _is_estimator(result[0]):
        from packager.convert_sklearn import convert_estimator

        return convert_estimator(result[0], result[1], f"{path}:{function}", options)
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], torch.nn.Module)):
        raise ModelLoadError(
            f"factory {path}:{function} must return (model, example_inputs) where model is a torch.nn.Module or "
            f"a fitted scikit-learn, LightGBM or XGBoost estimator; got {type(result).__name__}"
        )
    module, example = result
    return TorchModel(
        module=module.eval(),
        example_inputs=_named_inputs(example, f"{path}:{function}"),
        source=f"{path}:{function}",
        labels=tuple(str(label) for label in getattr(module, "labels", ()) or ()),
    )


def _is_estimator(model: Any) -> bool:
    """scikit-learn's estimator API, which LightGBM's and XGBoost's sklearn wrappers follow too."""
    return callable(getattr(model, "fit", None)) and callable(getattr(model, "get_params", None))


def _named_inputs(example: Any, source: str) -> dict[str, torch.Tensor]:
    import torch

    if isinstance(example, torch.Tensor):
        return {"input": example}
    if isinstance(example, dict) and example and all(isinstance(v, torch.Tensor) for v in example.values()):
        return {str(k): v for k, v in example.items()}
    if isinstance(example, tuple | list) and example and all(isinstance(v, torch.Tensor) for v in example):
        return {f"input_{i}": v for i, v in enumerate(example)}
    raise ModelLoadError(
        f"factory {source} returned example inputs of type {type(example).__name__}: "
        "give a tensor, a tuple of tensors or a dict of name -> tensor"
    )
