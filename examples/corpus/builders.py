"""ONNX files as people export them, built here with the libraries' own exporters and converters
(torch.onnx, skl2onnx, onnxmltools) and their default options: ZipMap outputs, low opsets, external
data. Each function writes one model into `folder` and returns its path."""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from examples.corpus import sklearn_models

SEED = 0


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _save(proto: Any, folder: Path, name: str) -> Path:
    import onnx

    path = folder / name
    onnx.save(proto, str(path))
    return path


def _float_input(features: int, name: str = "float_input") -> list[tuple[str, Any]]:
    from skl2onnx.common.data_types import FloatTensorType

    return [(name, FloatTensorType([None, features]))]


def rf_iris_zipmap(folder: Path) -> Path:
    """RandomForestClassifier on iris with class names, skl2onnx defaults: a string label and ZipMap maps."""
    from skl2onnx import convert_sklearn
    from sklearn.ensemble import RandomForestClassifier

    x, y = sklearn_models.iris_named()
    model = RandomForestClassifier(n_estimators=50, max_depth=6, random_state=SEED).fit(x, y)
    with _quiet():
        proto = convert_sklearn(model, initial_types=_float_input(4), target_opset={"": 17, "ai.onnx.ml": 3})
    return _save(proto, folder, "model.onnx")


def svc_zipmap_columns(folder: Path) -> Path:
    """Pipeline(StandardScaler, SVC(probability=True)) with ZipMap "columns": one output per class."""
    from skl2onnx import convert_sklearn
    from sklearn.datasets import load_iris
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    x, y = load_iris(return_X_y=True)
    model = make_pipeline(StandardScaler(), SVC(probability=True, random_state=SEED)).fit(x.astype(np.float32), y)
    with _quiet():
        proto = convert_sklearn(
            model, initial_types=_float_input(4), options={SVC: {"zipmap": "columns"}},
            target_opset={"": 17, "ai.onnx.ml": 3},
        )  # fmt: skip
    return _save(proto, folder, "model.onnx")


def logreg_opset1(folder: Path) -> Path:
    """LogisticRegression converted for opset 9: skl2onnx stamps ai.onnx opset 1 (and ai.onnx.ml 1)."""
    from skl2onnx import convert_sklearn
    from sklearn.linear_model import LogisticRegression

    x, y = sklearn_models.iris_named()
    model = LogisticRegression(max_iter=500).fit(x, y)
    with _quiet():
        proto = convert_sklearn(model, initial_types=_float_input(4), target_opset={"": 9, "ai.onnx.ml": 1})
    return _save(proto, folder, "model.onnx")


def isolation_forest(folder: Path) -> Path:
    """IsolationForest on breast-cancer features: label [batch, 1] (1 or -1) and scores [batch, 1]."""
    from skl2onnx import convert_sklearn
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import IsolationForest

    x = load_breast_cancer().data.astype(np.float32)
    model = IsolationForest(n_estimators=20, random_state=SEED).fit(x)
    with _quiet():
        proto = convert_sklearn(model, initial_types=_float_input(30, "X"), target_opset={"": 17, "ai.onnx.ml": 3})
    return _save(proto, folder, "model.onnx")


def tfidf_default_locale(folder: Path) -> Path:
    """A Tfidf text classifier converted with skl2onnx's defaults: its StringNormalizer asks for the
    en_US.UTF-8 locale."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import StringTensorType
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    texts, labels = sklearn_models.reviews()
    model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(texts, labels)
    with _quiet():
        proto = convert_sklearn(
            model, initial_types=[("text", StringTensorType([None, 1]))],
            options={TfidfVectorizer: {"tokenexp": r"\b\w+\b"}}, target_opset={"": 17, "ai.onnx.ml": 3},
        )  # fmt: skip
    return _save(proto, folder, "model.onnx")


def dict_vectorizer(folder: Path) -> Path:
    """DictVectorizer + LogisticRegression: the graph takes a map(string, float) per row, not a tensor."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DictionaryType, FloatTensorType, StringTensorType
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    rng = np.random.default_rng(SEED)
    rows = [{"height": float(h), "weight": float(w)} for h, w in rng.random((60, 2))]
    labels = np.array(["tall" if row["height"] > 0.5 else "short" for row in rows])
    model = make_pipeline(DictVectorizer(sparse=False), LogisticRegression()).fit(rows, labels)
    kind = DictionaryType(StringTensorType([1]), FloatTensorType([1]))
    with _quiet():
        proto = convert_sklearn(model, initial_types=[("features", kind)], target_opset={"": 17, "ai.onnx.ml": 3})
    return _save(proto, folder, "model.onnx")


def lightgbm_zipmap(folder: Path) -> Path:
    """LGBMClassifier on wine via onnxmltools.convert_lightgbm(zipmap=True): ai.onnx opset 9, ZipMap, and a
    label declared [1] that is really [batch]."""
    import lightgbm
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    x, y = sklearn_models.wine()
    model = lightgbm.LGBMClassifier(n_estimators=40, num_leaves=15, verbose=-1, random_state=SEED).fit(x, y)
    with _quiet():
        proto = onnxmltools.convert_lightgbm(
            model, initial_types=[("input", FloatTensorType([None, 13]))], target_opset=15, zipmap=True
        )
    return _save(proto, folder, "model.onnx")


def xgboost_onnxmltools(folder: Path) -> Path:
    """XGBRegressor on diabetes via onnxmltools.convert_xgboost: a graph that imports only ai.onnx.ml."""
    import onnxmltools
    import xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    model = xgboost.XGBRegressor(n_estimators=40, max_depth=4, random_state=SEED).fit(x.astype(np.float32), y)
    with _quiet():
        proto = onnxmltools.convert_xgboost(
            model, initial_types=[("input", FloatTensorType([None, 10]))], target_opset=15
        )
    return _save(proto, folder, "model.onnx")


def _legacy_export(module: Any, example: tuple[Any, ...], path: Path, **kwargs: Any) -> Path:
    import torch

    with _quiet(), torch.no_grad():
        torch.onnx.export(module.eval(), example, str(path), dynamo=False, **kwargs)
    return path


def cnn_opset9_fixed(folder: Path) -> Path:
    """A small MNIST-shaped CNN exported the old way: TorchScript exporter, opset 9, no dynamic axes
    (so batch 1 is fixed in the graph)."""
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    module = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 7 * 7, 10),
    )  # fmt: skip
    return _legacy_export(
        module, (torch.randn(1, 1, 28, 28),), folder / "model.onnx", input_names=["image"], output_names=["logits"],
        opset_version=9,
    )  # fmt: skip


def lstm_opset9(folder: Path) -> Path:
    """The corpus LSTM with state, TorchScript exporter at opset 9 with dynamic_axes (batch on axis 1)."""
    import torch

    from examples.corpus.torch_models import LSTMTagger

    torch.manual_seed(SEED)
    axes = {"x": {0: "seq", 1: "batch"}, "h0": {1: "batch"}, "c0": {1: "batch"}}
    axes |= {"y": {0: "seq", 1: "batch"}, "hn": {1: "batch"}, "cn": {1: "batch"}}
    example = (torch.randn(7, 3, 40), torch.zeros(2, 3, 64), torch.zeros(2, 3, 64))
    return _legacy_export(
        LSTMTagger(), example, folder / "model.onnx", input_names=["x", "h0", "c0"],
        output_names=["y", "hn", "cn"], dynamic_axes=axes, opset_version=9,
    )  # fmt: skip


def convnext_external_data(folder: Path) -> Path:
    """transformers' ConvNextForImageClassification exported with torch.onnx's defaults (dynamo), which
    store the weights beside the graph as external data (model.onnx + model.onnx.data)."""
    import torch
    import transformers

    torch.manual_seed(SEED)
    config = transformers.ConvNextConfig(
        hidden_sizes=[32, 64, 128, 256], depths=[1, 1, 2, 1], num_labels=10, image_size=64
    )
    model = transformers.ConvNextForImageClassification(config).eval()

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            return self.inner(pixel_values).logits

    path = folder / "model.onnx"
    batch = torch.export.Dim("batch")
    with _quiet(), torch.no_grad():
        torch.onnx.export(
            Logits(), (torch.randn(2, 3, 64, 64),), str(path), dynamo=True, input_names=["pixel_values"],
            output_names=["logits"], dynamic_shapes={"pixel_values": {0: batch}}, external_data=True,
        )  # fmt: skip
    return path
