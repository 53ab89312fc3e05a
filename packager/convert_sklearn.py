"""scikit-learn, LightGBM and XGBoost estimators and pipelines, converted to ONNX (skl2onnx, onnxmltools)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from packager.errors import ModelLoadError
from packager.load import LoadOptions, OnnxModel


def convert_estimator(estimator: Any, example: Any, source: str, options: LoadOptions) -> OnnxModel:
    raise ModelLoadError(f"{source}: converting {type(estimator).__name__} is not implemented yet")


def load_pickle(path: Path, options: LoadOptions) -> OnnxModel:
    raise ModelLoadError(f"{path}: pickled estimators are not implemented yet")
