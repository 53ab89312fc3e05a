"""scikit-learn, LightGBM and XGBoost estimators and pipelines, converted to ONNX (skl2onnx, onnxmltools).

The converted graph is what ships: classifiers answer `probabilities` [batch, classes] (columns in
`classes_` order, so by class name) and `label`, regressors answer `prediction`. The graph is checked
against the estimator's own predict() / predict_proba() before anything else uses it.
"""

from __future__ import annotations

import contextlib
import functools
import io
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from handlers.errors import reason
from packager.errors import ModelLoadError
from packager.export import BATCH_DIM, PARITY_ATOL
from packager.load import LoadOptions, OnnxModel, _is_estimator

if TYPE_CHECKING:
    import onnx

SKL2ONNX_OPSET = {"": 17, "ai.onnx.ml": 3}
ONNXMLTOOLS_MAX_OPSET = 15
"""onnxmltools' converters (LightGBM, XGBoost) are tested up to this opset; the graph is capped there."""
TEXT_LOCALE = "C.UTF-8"
"""skl2onnx's default en_US.UTF-8 is missing on Debian and Lambda images: onnxruntime then refuses the graph."""
PROBABILITIES, LABEL, PREDICTION, INPUT = "probabilities", "label", "prediction", "input"
REGRESSION_RTOL = 1e-4
PARITY_ROWS = 256
CONVERTED_NAME = "sklearn.onnx"
SUPPORTED_URL = "https://onnx.ai/sklearn-onnx/supported.html"
_BOOSTERS = ("lightgbm", "xgboost")
_DUMP = re.compile(r"(\s+(?:and|with))?\s+\S*=[\[{(].*$")
"""Where a converter's message starts printing a node's attributes."""


@dataclass(frozen=True)
class _Parity:
    rows: int
    worst: float
    """Largest probability difference (classifiers) or relative error (regressors)."""


def convert_estimator(estimator: Any, example: Any, source: str, options: LoadOptions) -> OnnxModel:
    """Convert a fitted estimator or pipeline, given example rows it predicts on, to ONNX in `options.work_dir`."""
    feeds = onnx_feeds(example, source)
    description = describe(estimator)
    if not callable(getattr(estimator, "predict", None)):
        raise ModelLoadError(
            f"{source}: {description} has no predict(); lambdafit serves classifiers and regressors "
            "(export a transformer to ONNX yourself and pack the .onnx file)"
        )
    classes = _classes(estimator)
    libraries = sorted({_library(part) for part in _parts(estimator)} & set(_BOOSTERS))
    for library in libraries:
        _register(library)
    float32 = bool(libraries) or any(_is_tree(part) for part in _parts(estimator))
    proto = _convert(estimator, feeds, description, boosters=bool(libraries), float32=float32)
    _name_outputs(proto, classifier=classes is not None)
    _name_batch_axis(proto)
    path = options.work_dir / CONVERTED_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(proto.SerializeToString())
    parity = _check_parity(estimator, example, path, classes, f"{source} ({description})")
    tool = "onnxmltools" if libraries else "skl2onnx"
    notes = [
        f"converted {description} with {tool} (opset {_opset(proto)}); ONNX matches it on {parity.rows} rows "
        f"(largest difference {parity.worst:.2g})"
    ]
    if float32 and any(array.dtype == np.float64 for array in feeds.values()):
        notes.append("float64 inputs are float32 in the graph: trees compare float32 features, as the libraries do")
    if classes is not None:
        notes.append(f"{PROBABILITIES} by class name: {', '.join(str(c) for c in classes)}")
    return OnnxModel(
        path=path, labels=tuple(str(c) for c in classes) if classes is not None else (), notes=tuple(notes)
    )


def load_pickle(path: Path, options: LoadOptions) -> OnnxModel:
    """A pickled estimator, or (estimator, example), loaded only with --trust-pickle and converted like a factory's."""
    if not options.trust_pickle:
        raise ModelLoadError(
            f"{path} is a pickle, and loading a pickle runs arbitrary code from the file; give --trust-pickle "
            "only for files you made or trust (lambdafit loads it at pack time and ships ONNX only), or better, "
            "write a factory file.py:build that returns (estimator, example) and pack that"
        )
    if not path.is_file():
        raise ModelLoadError(f"model {path} does not exist")
    loaded, warned = _unpickle(path)
    synthesized = _is_estimator(loaded)
    if synthesized:
        estimator, example = loaded, _synthesized_example(loaded, path)
    elif isinstance(loaded, tuple) and len(loaded) == 2 and _is_estimator(loaded[0]):
        estimator, example = loaded
    else:
        raise ModelLoadError(
            f"{path} holds a {type(loaded).__name__}, not a fitted scikit-learn, LightGBM or XGBoost estimator; "
            "pickle the estimator (or (estimator, example)), or write a factory file.py:build"
        )
    converted = convert_estimator(estimator, example, str(path), options)
    notes = [f"unpickled {path} at pack time (--trust-pickle); the bundle ships ONNX only", *warned]
    if synthesized:
        notes.append("parity checked on one row of zeros only: a factory returning real example rows checks more")
    return OnnxModel(path=converted.path, labels=converted.labels, notes=(*notes, *converted.notes))


def onnx_feeds(example: Any, source: str = "example") -> dict[str, np.ndarray]:
    """Example rows as the converted graph takes them: an array is one input `input` [batch, features];
    a DataFrame or a dict is one input per column, [batch, 1] each (or [batch, k] for a 2-D dict value)."""
    columns: dict[str, Any]
    if _is_dataframe(example):
        columns = {str(name): example[name].to_numpy() for name in example.columns}
    elif isinstance(example, dict):
        columns = {str(name): np.asarray(value) for name, value in example.items()}
    elif isinstance(example, np.ndarray | list | tuple):
        columns = {INPUT: np.asarray(example)}
    else:
        raise ModelLoadError(
            f"{source}: the example is a {type(example).__name__}; give a numpy array, a pandas DataFrame "
            "or a dict of name -> array, with a few rows of real inputs"
        )
    if not columns:
        raise ModelLoadError(f"{source}: the example has no columns")
    feeds = {}
    for name, values in columns.items():
        array = values.reshape(-1, 1) if values.ndim == 1 else values
        if array.ndim != 2 or array.shape[0] == 0:
            raise ModelLoadError(
                f"{source}: example {name!r} has shape {values.shape}; give rows of features ([rows, features])"
            )
        feeds[name] = _tensor_dtype(array, name, source)
    rows = {array.shape[0] for array in feeds.values()}
    if len(rows) != 1:
        raise ModelLoadError(f"{source}: the example's columns have different row counts {sorted(rows)}")
    return feeds


def session_feeds(session: Any, example: Any) -> dict[str, np.ndarray]:
    """`onnx_feeds` with floats in the precision the session's inputs declare."""
    feeds = onnx_feeds(example)
    for value in session.get_inputs():
        if value.type == "tensor(float)" and value.name in feeds:
            feeds[value.name] = feeds[value.name].astype(np.float32)
    return feeds


def describe(estimator: Any) -> str:
    """`Pipeline(StandardScaler, SVC)`: what the user built, as messages and notes name it."""
    name = type(estimator).__name__
    children = list(_children(estimator))
    if not children:
        return name
    return f"{name}({', '.join(describe(child) for child in children)})"


def _tensor_dtype(array: np.ndarray, name: str, source: str) -> np.ndarray:
    kind = array.dtype.kind
    if kind == "f":
        return array.astype(np.float64 if array.dtype.itemsize >= 8 else np.float32)
    if kind in "iub":
        return array.astype(np.int64)
    if kind in "OUS":
        return array.astype(str).astype(object)
    raise ModelLoadError(
        f"{source}: example {name!r} has dtype {array.dtype}; give float32, float64, int64 or string columns"
    )


def _initial_types(feeds: dict[str, np.ndarray], *, float32: bool) -> list[tuple[str, Any]]:
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, Int64TensorType, StringTensorType

    double = FloatTensorType if float32 else DoubleTensorType
    types = {np.dtype(np.float32): FloatTensorType, np.dtype(np.float64): double}
    types[np.dtype(np.int64)] = Int64TensorType
    types[np.dtype(object)] = StringTensorType
    return [(name, types[array.dtype]([None, array.shape[1]])) for name, array in feeds.items()]


def _convert(
    estimator: Any, feeds: dict[str, np.ndarray], description: str, *, boosters: bool, float32: bool
) -> onnx.ModelProto:
    from skl2onnx import convert_sklearn

    opset = dict(SKL2ONNX_OPSET)
    if boosters:
        opset[""] = min(opset[""], ONNXMLTOOLS_MAX_OPSET)
    try:
        with _quiet():
            proto: onnx.ModelProto = convert_sklearn(
                estimator,
                initial_types=_initial_types(feeds, float32=float32),
                target_opset=opset,
                options=_options(estimator),
            )
    except Exception as exc:
        raise ModelLoadError(
            f"cannot convert {description} to ONNX with {_versions(boosters)}: {_short(exc)}; use an estimator "
            f"the converters support ({SUPPORTED_URL}, LightGBM, XGBoost), or export it to ONNX yourself and "
            "pack the .onnx file"
        ) from exc
    seen: set[str] = set()
    for entry in list(proto.opset_import):
        if entry.domain in seen:
            proto.opset_import.remove(entry)
        seen.add(entry.domain)
    return proto


def _versions(boosters: bool) -> str:
    from importlib.metadata import version

    names = ["skl2onnx", *(["onnxmltools"] if boosters else []), "scikit-learn"]
    tools = [f"{name} {version(name)}" for name in names]
    return f"{' and '.join(tools[:-1])} ({tools[-1]})"


def _options(estimator: Any) -> dict[int, dict[str, Any]]:
    """No ZipMap (probabilities as a plain [batch, classes] tensor) and a locale every image has."""
    options: dict[int, dict[str, Any]] = {}
    for part in _parts(estimator):
        if _classes(part) is not None and not list(_children(part)):
            options[id(part)] = {"zipmap": False}
        if hasattr(part, "build_analyzer") and hasattr(part, "vocabulary_"):
            options[id(part)] = {"locale": TEXT_LOCALE}
    return options


def _parts(estimator: Any) -> Iterator[Any]:
    yield estimator
    for child in _children(estimator):
        yield from _parts(child)


def _children(estimator: Any) -> Iterator[Any]:
    """The fitted steps of a Pipeline, ColumnTransformer or FeatureUnion (strings such as 'drop' left out)."""
    if hasattr(estimator, "steps"):
        steps = [step for _, step in estimator.steps]
    elif hasattr(estimator, "transformers_"):
        steps = [step for _, step, _ in estimator.transformers_]
    elif hasattr(estimator, "transformer_list"):
        steps = [step for _, step in estimator.transformer_list]
    else:
        steps = []
    yield from (step for step in steps if not isinstance(step, str) and step is not None)


def _library(estimator: Any) -> str:
    return type(estimator).__module__.split(".")[0]


def _is_tree(estimator: Any) -> bool:
    """scikit-learn's trees cast features to float32 before comparing; LightGBM's and XGBoost's converters
    take float32 only. A float64 input to such a graph would compare other values than the estimator."""
    module = type(estimator).__module__
    return module.startswith(("sklearn.tree", "sklearn.ensemble")) or _library(estimator) in _BOOSTERS


def _classes(estimator: Any) -> np.ndarray | None:
    try:
        classes = getattr(estimator, "classes_", None)
    except Exception:
        return None
    return None if classes is None else np.asarray(classes)


@functools.cache
def _register(library: str) -> None:
    """onnxmltools' converters, registered with skl2onnx so that they convert inside pipelines too."""
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    classifier_options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    if library == "lightgbm":
        from lightgbm import LGBMClassifier, LGBMRegressor
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

        update_registered_converter(
            LGBMClassifier,
            "LightGbmLGBMClassifier",
            calculate_linear_classifier_output_shapes,
            _exact_thresholds(convert_lightgbm),
            options=classifier_options,
        )
        update_registered_converter(
            LGBMRegressor,
            "LightGbmLGBMRegressor",
            calculate_linear_regressor_output_shapes,
            _exact_thresholds(convert_lightgbm),
            options={"split": None},
        )
    elif library == "xgboost":
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
        from xgboost import XGBClassifier, XGBRegressor

        update_registered_converter(
            XGBClassifier,
            "XGBoostXGBClassifier",
            calculate_linear_classifier_output_shapes,
            convert_xgboost,
            options=classifier_options,
        )
        update_registered_converter(
            XGBRegressor, "XGBoostXGBRegressor", calculate_linear_regressor_output_shapes, convert_xgboost
        )


def _exact_thresholds(convert: Callable[..., None]) -> Callable[..., None]:
    """LightGBM compares features to double thresholds, and onnxmltools writes them as the nearest float32:
    a feature between the two takes the other branch. The largest float32 not above a `<=` threshold keeps
    every float32 comparison exact."""

    def converter(scope: Any, operator: Any, container: Any) -> None:
        add_node = container.add_node

        def add(op_type: str, *args: Any, **attrs: Any) -> Any:
            if op_type.startswith("TreeEnsemble") and "nodes_values" in attrs:
                modes = attrs.get("nodes_modes", [])
                attrs["nodes_values"] = [
                    _float32_at_most(value) if mode in ("BRANCH_LEQ", b"BRANCH_LEQ") else value
                    for value, mode in zip(attrs["nodes_values"], modes, strict=True)
                ]
            return add_node(op_type, *args, **attrs)

        container.add_node = add
        try:
            convert(scope, operator, container)
        finally:
            del container.add_node

    return converter


def _float32_at_most(value: float) -> float:
    rounded = np.float32(value)
    if float(rounded) > value:
        rounded = np.nextafter(rounded, np.float32(-np.inf))
    return float(rounded)


def _name_outputs(proto: onnx.ModelProto, *, classifier: bool) -> None:
    """skl2onnx answers (label, probabilities) or (variable,): probabilities first, a regressor's `prediction`."""
    graph = proto.graph
    if classifier and len(graph.output) == 2:
        _rename(graph, graph.output[0].name, LABEL)
        _rename(graph, graph.output[1].name, PROBABILITIES)
        label, probabilities = (type(value)() for value in graph.output)
        label.CopyFrom(graph.output[0])
        probabilities.CopyFrom(graph.output[1])
        del graph.output[:]
        graph.output.extend([probabilities, label])
    elif not classifier and len(graph.output) == 1:
        _rename(graph, graph.output[0].name, PREDICTION)


def _rename(graph: onnx.GraphProto, old: str, new: str) -> None:
    if old == new:
        return
    taken = {value.name for value in [*graph.input, *graph.output]} | {o for node in graph.node for o in node.output}
    if new in taken:
        return
    for node in graph.node:
        node.output[:] = [new if name == old else name for name in node.output]
        node.input[:] = [new if name == old else name for name in node.input]
    for value in graph.output:
        if value.name == old:
            value.name = new


def _name_batch_axis(proto: onnx.ModelProto) -> None:
    """skl2onnx leaves the first axis unnamed: call it what it is, as torch exports do."""
    for value in [*proto.graph.input, *proto.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = BATCH_DIM


def _opset(proto: onnx.ModelProto) -> str:
    versions = {entry.domain or "ai.onnx": entry.version for entry in proto.opset_import}
    main = versions.pop("ai.onnx", None)
    return ", ".join([str(main), *(f"{domain} {version}" for domain, version in sorted(versions.items()))])


def _check_parity(estimator: Any, example: Any, path: Path, classes: np.ndarray | None, what: str) -> _Parity:
    """onnxruntime against the estimator on the example, then on one row of it (another batch size)."""
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelLoadError(
            f"onnxruntime cannot load the converted {what}: {reason(exc)}; export it to ONNX yourself "
            "and pack the .onnx file"
        ) from exc
    total = len(next(iter(onnx_feeds(example).values())))
    slices = [(0, min(total, PARITY_ROWS))] + ([(total // 2, total // 2 + 1)] if total > 1 else [])
    worst, rows = 0.0, 0
    for start, stop in slices:
        rows_example = _rows(example, start, stop)
        try:
            got = dict(
                zip(_output_names(session), session.run(None, session_feeds(session, rows_example)), strict=True)
            )
        except Exception as exc:
            raise ModelLoadError(f"onnxruntime cannot run the converted {what}: {reason(exc)}") from exc
        with _quiet():
            expected = np.asarray(estimator.predict(_predict_input(estimator, rows_example)))
            proba = (
                np.asarray(estimator.predict_proba(_predict_input(estimator, rows_example)))
                if classes is not None and callable(getattr(estimator, "predict_proba", None))
                else None
            )
        worst = max(worst, _compare(got, expected, proba, classes, what))
        rows += stop - start
    return _Parity(rows=rows, worst=worst)


def _output_names(session: Any) -> list[str]:
    return [str(output.name) for output in session.get_outputs()]


def _compare(
    got: dict[str, np.ndarray], expected: np.ndarray, proba: np.ndarray | None, classes: np.ndarray | None, what: str
) -> float:
    if classes is not None:
        labels = got.get(LABEL)
        if labels is None:
            raise ModelLoadError(
                f"the converted {what} has outputs {', '.join(got)} and no {LABEL!r} to check it by; "
                "export it to ONNX yourself and pack the .onnx file"
            )
        mismatched = _label_mismatches(labels.ravel(), expected.ravel(), classes)
        if mismatched:
            raise ModelLoadError(
                f"the converted {what} predicts other labels than the estimator on {mismatched} of "
                f"{len(expected)} example rows; export it to ONNX yourself and pack the .onnx file"
            )
        if proba is None or PROBABILITIES not in got:
            return 0.0
        diff = float(np.max(np.abs(got[PROBABILITIES].astype(np.float64) - proba), initial=0.0))
        if not diff <= PARITY_ATOL:
            raise ModelLoadError(
                f"the converted {what} differs from predict_proba() by {diff:.3g} (allowed {PARITY_ATOL:g}); "
                "export it to ONNX yourself and pack the .onnx file"
            )
        return diff
    prediction = got.get(PREDICTION, next(iter(got.values())))
    want = expected.astype(np.float64).reshape(prediction.shape)
    error = np.abs(prediction.astype(np.float64) - want) / np.maximum(np.abs(want), 1.0)
    worst = float(np.max(error, initial=0.0))
    if not worst <= REGRESSION_RTOL:
        raise ModelLoadError(
            f"the converted {what} differs from predict() by a relative {worst:.3g} (allowed {REGRESSION_RTOL:g}); "
            "export it to ONNX yourself and pack the .onnx file"
        )
    return worst


def _label_mismatches(got: np.ndarray, expected: np.ndarray, classes: np.ndarray) -> int:
    if got.shape != expected.shape:
        return len(expected)
    if classes.dtype.kind in "iufb":
        return int(np.sum(got.astype(np.float64) != expected.astype(np.float64)))
    return int(np.sum(got.astype(str) != expected.astype(str)))


def _rows(example: Any, start: int, stop: int) -> Any:
    if _is_dataframe(example):
        return example.iloc[start:stop]
    if isinstance(example, dict):
        return {name: np.asarray(value)[start:stop] for name, value in example.items()}
    return np.asarray(example)[start:stop]


def _predict_input(estimator: Any, example: Any) -> Any:
    """What the estimator's predict() takes: a dict becomes the DataFrame it stands for, unless the
    estimator was not fitted on named columns and the dict holds one: then that column's values (a
    text pipeline takes a list of documents, and would read a DataFrame as its column names)."""
    if isinstance(example, dict) and len(example) == 1 and getattr(estimator, "feature_names_in_", None) is None:
        return np.asarray(next(iter(example.values())))
    if isinstance(example, dict):
        import pandas as pd

        return pd.DataFrame({name: np.asarray(value).ravel() for name, value in example.items()})
    return example


def _is_dataframe(example: Any) -> bool:
    return type(example).__name__ == "DataFrame" and hasattr(example, "columns") and hasattr(example, "iloc")


def _short(exc: BaseException, limit: int = 160) -> str:
    """The converter's reason in one line: its first line (cut when it dumps data) and its cause's."""
    parts: list[str] = []
    error: BaseException | None = exc
    while error is not None and len(parts) < 2:
        line = _DUMP.sub(" ...", reason(error))
        parts.append(line if len(line) <= limit else line[:limit].rsplit(" ", 1)[0] + " ...")
        error = error.__cause__
    return parts[0] + (f" ({parts[1]})" if len(parts) > 1 and parts[1] != parts[0] else "")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Converters and estimators warn and print about things the parity check settles."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _unpickle(path: Path) -> tuple[Any, list[str]]:
    import pickle

    import joblib

    with warnings.catch_warnings(record=True) as caught, path.open("rb") as handle:
        warnings.simplefilter("always")
        try:
            # The one place lambdafit unpickles: only with --trust-pickle (the user vouches for the file), only at
            # pack time, and what ships is the converted ONNX graph; handlers/ never unpickles anything.
            loaded = joblib.load(handle) if path.suffix.lower() == ".joblib" else pickle.load(handle)
        except Exception as exc:
            raise ModelLoadError(
                f"cannot unpickle {path}: {reason(exc)}; load it with the library versions it was saved with, "
                "or write a factory file.py:build that returns (estimator, example)"
            ) from exc
    warned = sorted({f"unpickling {path} warned: {reason(Warning(str(w.message)))}" for w in caught})
    return loaded, warned


def _synthesized_example(estimator: Any, path: Path) -> np.ndarray:
    """One row of float32 zeros, when the estimator says how many numeric features it takes."""
    count = getattr(estimator, "n_features_in_", None)
    strings = [describe(part) for part in _parts(estimator) if _may_take_strings(part)]
    if not isinstance(count, int | np.integer) or strings:
        why = f"{strings[0]} may take strings or named columns" if strings else "it does not say how many features"
        raise ModelLoadError(
            f"{path}: cannot tell what inputs {describe(estimator)} takes ({why}); write a factory file.py:build "
            "that loads it and returns (estimator, example) with a few rows of real inputs, and pack that"
        )
    return np.zeros((1, int(count)), dtype=np.float32)


def _may_take_strings(part: Any) -> bool:
    if hasattr(part, "vocabulary_") or hasattr(part, "transformers_"):
        return True
    categories = getattr(part, "categories_", None) or []
    return any(np.asarray(c).dtype.kind not in "iufb" for c in categories)
