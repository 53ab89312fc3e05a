"""scikit-learn, LightGBM and XGBoost factories and pickles, converted with the real skl2onnx / onnxmltools
and checked with onnxruntime against the estimator's own predictions on rows it was not fitted on."""

from __future__ import annotations

import json
import pickle
import runpy
import textwrap
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import onnxruntime
import pytest
import typer
from typer.testing import CliRunner

from handlers.manifest import Manifest
from packager.cli import app
from packager.config import DEFAULT_PYTHON, ENV_PYTHON, resolve
from packager.convert_sklearn import session_feeds
from packager.emulator import LambdaContext
from packager.errors import ModelLoadError
from packager.load import LoadOptions, OnnxModel, load_model
from tests.conftest import handler_for

PREAMBLE = """
import numpy as np
import pandas as pd
from sklearn import datasets
from sklearn.model_selection import train_test_split


def named(bunch):
    return bunch.data, bunch.target_names[bunch.target]


def texts():
    rng = np.random.default_rng(0)
    good, bad = ["great", "fun", "moving", "clever", "warm"], ["dull", "slow", "flat", "noisy", "weak"]
    filler = ["the", "film", "was", "and", "plot", "a", "very"]
    rows, labels = [], []
    for i in range(240):
        words = good if i % 2 else bad
        rows.append(" ".join(rng.choice(filler + words, size=8)))
        labels.append("pos" if i % 2 else "neg")
    return np.array(rows), np.array(labels)


def with_grade(bunch):
    frame = bunch.frame.drop(columns="target").iloc[:, :5].copy()
    frame["grade"] = np.where(frame["alcohol"] > 13.0, "high", "low")
    return frame, bunch.target_names[bunch.target]


def split():
    X, y = DATA
    return train_test_split(X, y, test_size=0.3, random_state=0)


def build():
    X_train, _, y_train, _ = split()
    model = MODEL
    model.fit(X_train, y_train)
    return model, X_train[:40]


def held_out():
    return split()[1]
"""

CASES: dict[str, tuple[str, str, str]] = {
    # name: (imports, DATA, MODEL)
    "random-forest": (
        "from sklearn.ensemble import RandomForestClassifier",
        "named(datasets.load_iris())",
        "RandomForestClassifier(n_estimators=25, random_state=0)",
    ),
    "gradient-boosting": (
        "from sklearn.ensemble import GradientBoostingClassifier",
        "named(datasets.load_wine())",
        "GradientBoostingClassifier(n_estimators=30, random_state=0)",
    ),
    "logistic-regression": (
        "from sklearn.linear_model import LogisticRegression",
        "named(datasets.load_iris())",
        "LogisticRegression(max_iter=2000)",
    ),
    "scaler-svc": (
        "from sklearn.pipeline import make_pipeline\n"
        "from sklearn.preprocessing import StandardScaler\n"
        "from sklearn.svm import SVC",
        "named(datasets.load_wine())",
        "make_pipeline(StandardScaler(), SVC(probability=True, random_state=0))",
    ),
    "column-transformer": (
        "from sklearn.compose import ColumnTransformer\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from sklearn.pipeline import make_pipeline\n"
        "from sklearn.preprocessing import OneHotEncoder, StandardScaler",
        "with_grade(datasets.load_wine(as_frame=True))",
        "make_pipeline(ColumnTransformer([('num', StandardScaler(), ['alcohol', 'malic_acid', 'ash', "
        "'alcalinity_of_ash', 'magnesium']), ('cat', OneHotEncoder(handle_unknown='ignore'), ['grade'])]), "
        "LogisticRegression(max_iter=2000))",
    ),
    "tfidf": (
        "from sklearn.feature_extraction.text import TfidfVectorizer\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from sklearn.pipeline import make_pipeline",
        "texts()",
        "make_pipeline(TfidfVectorizer(), LogisticRegression())",
    ),
    "random-forest-regressor": (
        "from sklearn.ensemble import RandomForestRegressor",
        "datasets.load_diabetes(return_X_y=True)",
        "RandomForestRegressor(n_estimators=20, max_depth=6, random_state=0)",
    ),
    "lightgbm-classifier": (
        "from lightgbm import LGBMClassifier",
        "(lambda X, y: (X.astype(np.float32), y))(*named(datasets.load_breast_cancer()))",
        "LGBMClassifier(n_estimators=30, verbose=-1, random_state=0)",
    ),
    "lightgbm-regressor": (
        "from lightgbm import LGBMRegressor",
        "(lambda X, y: (X.astype(np.float32), y))(*datasets.load_diabetes(return_X_y=True))",
        "LGBMRegressor(n_estimators=30, verbose=-1, random_state=0)",
    ),
    "lightgbm-pipeline": (
        "from lightgbm import LGBMClassifier\n"
        "from sklearn.pipeline import make_pipeline\n"
        "from sklearn.preprocessing import StandardScaler",
        "(lambda X, y: (X.astype(np.float32), y))(*named(datasets.load_wine()))",
        "make_pipeline(StandardScaler(), LGBMClassifier(n_estimators=30, verbose=-1, random_state=0))",
    ),
    "xgboost-classifier": (
        "from xgboost import XGBClassifier",
        "datasets.load_wine(return_X_y=True)",
        "XGBClassifier(n_estimators=30, max_depth=3, random_state=0)",
    ),
    "xgboost-regressor": (
        "from xgboost import XGBRegressor",
        "datasets.load_diabetes(return_X_y=True)",
        "XGBRegressor(n_estimators=30, max_depth=3, random_state=0)",
    ),
}

EXPECTED_LABELS = {
    "random-forest": ("setosa", "versicolor", "virginica"),
    "gradient-boosting": ("class_0", "class_1", "class_2"),
    "logistic-regression": ("setosa", "versicolor", "virginica"),
    "scaler-svc": ("class_0", "class_1", "class_2"),
    "column-transformer": ("class_0", "class_1", "class_2"),
    "tfidf": ("neg", "pos"),
    "lightgbm-classifier": ("benign", "malignant"),
    "lightgbm-pipeline": ("class_0", "class_1", "class_2"),
    "xgboost-classifier": ("0", "1", "2"),
}


def write_factory(folder: Path, case: str, *, extra: str = "") -> Path:
    imports, data, model = CASES[case]
    source = imports + "\n" + PREAMBLE.replace("DATA", data, 1).replace("MODEL", model, 1) + textwrap.dedent(extra)
    path = folder / f"{case.replace('-', '_')}.py"
    path.write_text(source)
    return path


def convert(path: Path, work: Path, function: str = "build") -> OnnxModel:
    model = load_model(f"{path}:{function}", LoadOptions(work_dir=work))
    assert isinstance(model, OnnxModel)
    return model


@pytest.mark.parametrize("case", list(CASES))
def test_converted_model_matches_the_estimator_on_held_out_rows(tmp_path: Path, case: str) -> None:
    path = write_factory(tmp_path, case)
    converted = convert(path, tmp_path / "work")

    factory = runpy.run_path(str(path))
    estimator, _ = factory["build"]()
    rows = factory["held_out"]()
    session = onnxruntime.InferenceSession(str(converted.path), providers=["CPUExecutionProvider"])
    outputs = dict(
        zip([o.name for o in session.get_outputs()], session.run(None, session_feeds(session, rows)), strict=True)
    )
    if case in EXPECTED_LABELS:
        assert converted.labels == EXPECTED_LABELS[case]
        assert [o.name for o in session.get_outputs()] == ["probabilities", "label"]
        assert outputs["probabilities"].shape == (len(rows), len(converted.labels))
        assert outputs["label"].astype(str).tolist() == np.asarray(estimator.predict(rows)).astype(str).tolist()
        assert np.abs(outputs["probabilities"] - estimator.predict_proba(rows)).max() <= 1e-4
        assert any("probabilities by class name" in note for note in converted.notes)
    else:
        assert converted.labels == ()
        assert [o.name for o in session.get_outputs()] == ["prediction"]
        want = estimator.predict(rows)
        got = outputs["prediction"].ravel().astype(np.float64)
        assert np.all(np.abs(got - want) <= 1e-4 * np.maximum(np.abs(want), 1.0))
    assert all(i.shape[0] == "batch" for i in session.get_inputs())


def test_dataframe_columns_become_named_typed_inputs(tmp_path: Path) -> None:
    converted = convert(write_factory(tmp_path, "column-transformer"), tmp_path / "work")
    session = onnxruntime.InferenceSession(str(converted.path), providers=["CPUExecutionProvider"])
    inputs = {i.name: (i.type, i.shape) for i in session.get_inputs()}
    assert inputs["grade"] == ("tensor(string)", ["batch", 1])
    assert inputs["alcohol"] == ("tensor(double)", ["batch", 1])
    assert len(inputs) == 6


def test_boosters_convert_with_onnxmltools_and_take_float32(tmp_path: Path) -> None:
    converted = convert(write_factory(tmp_path, "xgboost-regressor"), tmp_path / "work")
    session = onnxruntime.InferenceSession(str(converted.path), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type, i.shape) for i in session.get_inputs()] == [("input", "tensor(float)", ["batch", 10])]
    assert converted.notes[0].startswith("converted XGBRegressor with onnxmltools")
    assert any("float64 inputs are float32 in the graph" in note for note in converted.notes)


@pytest.mark.parametrize(
    ("model", "named"),
    [
        ("HistGradientBoostingClassifier(max_iter=5)", "HistGradientBoostingClassifier"),
        ("make_pipeline(StandardScaler(), Doubler())", "Pipeline(StandardScaler, Doubler)"),
    ],
)
def test_unconvertible_estimator_is_one_plain_line(tmp_path: Path, model: str, named: str) -> None:
    path = tmp_path / "bad.py"
    path.write_text(
        textwrap.dedent(f"""
        import numpy as np
        from sklearn.base import BaseEstimator, RegressorMixin
        from sklearn.datasets import load_iris
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        class Doubler(RegressorMixin, BaseEstimator):
            def fit(self, X, y):
                self.n_features_in_ = X.shape[1]
                return self

            def predict(self, X):
                return 2 * np.asarray(X)[:, 0]

        def build():
            X, y = load_iris(return_X_y=True)
            return {model}.fit(X, y), X[:10]
        """)
    )
    with pytest.raises(ModelLoadError) as caught:
        convert(path, tmp_path / "work")
    message = str(caught.value)
    assert message.startswith(f"cannot convert {named} to ONNX with skl2onnx ")
    assert "export it to ONNX yourself and pack the .onnx file" in message
    assert "\n" not in message and "\x1b" not in message and "Traceback" not in message
    assert len(message) < 600


def test_onnx_that_disagrees_with_predict_proba_is_refused(tmp_path: Path) -> None:
    path = write_factory(
        tmp_path,
        "logistic-regression",
        extra="""
        def skewed():
            model, example = build()
            honest = model.predict_proba
            model.predict_proba = lambda X: honest(X) + 0.01
            return model, example
        """,
    )
    with pytest.raises(ModelLoadError, match=r"differs from predict_proba\(\) by 0\.01 \(allowed 0\.0001\)"):
        convert(path, tmp_path / "work", "skewed")


def fitted(tmp_path: Path, case: str) -> tuple[Any, Any]:
    result: tuple[Any, Any] = runpy.run_path(str(write_factory(tmp_path, case)))["build"]()
    return result


def test_pickle_is_refused_without_trust(tmp_path: Path) -> None:
    estimator, _ = fitted(tmp_path, "random-forest")
    joblib.dump(estimator, tmp_path / "model.joblib")
    with pytest.raises(ModelLoadError) as caught:
        load_model(str(tmp_path / "model.joblib"), LoadOptions(work_dir=tmp_path / "work"))
    message = str(caught.value)
    assert "loading a pickle runs arbitrary code" in message
    assert "--trust-pickle" in message and "files you made or trust" in message
    assert "factory file.py:build that returns (estimator, example)" in message
    assert not (tmp_path / "work").exists()


def test_pack_cli_refuses_a_pickle_until_trusted(tmp_path: Path) -> None:
    estimator, _ = fitted(tmp_path, "random-forest")
    joblib.dump(estimator, tmp_path / "model.joblib")
    args = ["pack", str(tmp_path / "model.joblib"), "--name", "iris", "--output", str(tmp_path / "out")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "runs arbitrary code" in result.output and "Traceback" not in result.output
    pack = typer.main.get_command(app).commands["pack"]
    (option,) = [param for param in pack.params if param.name == "trust_pickle"]
    assert option.opts == ["--trust-pickle"]
    assert "with pickle at pack time, which runs the code inside it" in option.help
    assert "the bundle ships ONNX only" in option.help


@pytest.mark.parametrize("suffix", [".joblib", ".pkl"])
def test_trusted_pickle_is_converted_at_pack_time(tmp_path: Path, suffix: str) -> None:
    estimator, _ = fitted(tmp_path, "lightgbm-pipeline")
    path = tmp_path / f"model{suffix}"
    if suffix == ".joblib":
        joblib.dump(estimator, path)
    else:
        path.write_bytes(pickle.dumps(estimator))
    converted = load_model(str(path), LoadOptions(work_dir=tmp_path / "work", trust_pickle=True))
    assert isinstance(converted, OnnxModel) and converted.path.suffix == ".onnx"
    assert converted.labels == ("class_0", "class_1", "class_2")
    assert "at pack time (--trust-pickle); the bundle ships ONNX only" in converted.notes[0]
    assert any("one row of zeros" in note for note in converted.notes)
    rows = runpy.run_path(str(tmp_path / "lightgbm_pipeline.py"))["held_out"]()
    session = onnxruntime.InferenceSession(str(converted.path), providers=["CPUExecutionProvider"])
    label = session.run(["label"], session_feeds(session, rows))[0]
    assert label.tolist() == estimator.predict(rows).tolist()


def test_pickled_estimator_and_example_use_the_example(tmp_path: Path) -> None:
    estimator, example = fitted(tmp_path, "column-transformer")
    joblib.dump((estimator, example), tmp_path / "model.joblib")
    converted = load_model(str(tmp_path / "model.joblib"), LoadOptions(work_dir=tmp_path / "work", trust_pickle=True))
    assert isinstance(converted, OnnxModel)
    assert "ONNX matches it on 41 rows" in " ".join(converted.notes)


def test_pickle_whose_inputs_cannot_be_known_asks_for_a_factory(tmp_path: Path) -> None:
    estimator, _ = fitted(tmp_path, "column-transformer")
    joblib.dump(estimator, tmp_path / "model.joblib")
    with pytest.raises(ModelLoadError, match=r"cannot tell what inputs .*ColumnTransformer.*returns \(estimator, "):
        load_model(str(tmp_path / "model.joblib"), LoadOptions(work_dir=tmp_path / "work", trust_pickle=True))


def test_pack_cli_ships_a_converted_classifier_and_never_a_pickle(tmp_path: Path) -> None:
    path = write_factory(tmp_path, "xgboost-classifier")
    python = resolve(None, ENV_PYTHON, DEFAULT_PYTHON)
    args = ["pack", f"{path}:build", "--name", "wine", "--output", str(tmp_path / "out"), "--recipes", "fp32"]
    result = CliRunner().invoke(app, [*args, "--python", python])
    assert result.exit_code == 0, result.output
    bundle = tmp_path / "out" / "wine"
    manifest = Manifest.load(bundle / "function" / "model")
    assert [(s.name, s.dtype, s.shape) for s in manifest.inputs] == [("input", "float32", ("batch", 13))]
    assert [(s.name, s.dtype) for s in manifest.outputs] == [("probabilities", "float32"), ("label", "int64")]
    assert manifest.labels == ("0", "1", "2")
    report = json.loads((bundle / "report.json").read_text())
    assert any("converted XGBClassifier with onnxmltools" in note for note in report["notes"])
    shipped = {p.suffix for p in (bundle / "function").rglob("*") if p.is_file()}
    assert not shipped & {".pkl", ".pickle", ".joblib"}
    handler_source = " ".join(p.read_text() for p in (bundle / "function" / "handlers").glob("*.py"))
    assert "pickle" not in handler_source and "joblib" not in handler_source

    factory = runpy.run_path(str(path))
    estimator, _ = factory["build"]()
    rows = factory["held_out"]()[:5]
    event = json.loads((bundle / "events" / "predict-rest.json").read_text())
    event["body"] = json.dumps({"inputs": rows.astype(np.float32).tolist()})
    result = handler_for(bundle / "function" / "model")(event, LambdaContext(function_name="wine"))
    body = json.loads(result["body"])
    assert result["statusCode"] == 200, body
    assert body["outputs"]["label"] == estimator.predict(rows).tolist()
    assert np.abs(np.array(body["outputs"]["probabilities"]) - estimator.predict_proba(rows)).max() <= 1e-4
    assert [p["label"] for p in body["predictions"]] == [str(c) for c in estimator.predict(rows)]
