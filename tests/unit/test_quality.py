"""Quality metrics by task: what each output means picks its metric, and each metric scores what it should."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from handlers.manifest import Manifest, TensorSpec
from packager import quality_job
from packager.data import Dataset
from packager.errors import LambdafitError
from packager.quality import Accuracy, Cosine, CtcExactMatch, Fidelity, MaskIoU, RSquared, UserMetric, pick_metric
from packager.quality_job import QualityCheck

RNG = np.random.default_rng(0)
MANIFEST = Manifest(
    "m", "v", "", (TensorSpec("x", "float32", ("batch", 1)),), (TensorSpec("y", "float32", ("batch",)),)
)


def spec(name: str, shape: tuple[int | str, ...]) -> TensorSpec:
    return TensorSpec(name, "float32", shape, batch_axis=0)


def pick(name: str, value: np.ndarray, **options: object) -> object:
    shape = ("batch", *value.shape[1:])
    return pick_metric(
        {name: value},
        (spec(name, shape),),
        classifier=None,
        label_indices=None,
        label_names=(),
        text_labels=None,
        charset=None,
        **options,  # type: ignore[arg-type]
    )


def detector_map() -> np.ndarray:
    """Text-detector probabilities: near 0 off the text, near 1 on it."""
    mask = np.zeros((4, 1, 64, 64), dtype=np.float32)
    mask[:, :, 10:20, 5:60] = 1.0
    mask[:, :, 30:42, 8:50] = 1.0
    return np.clip(mask + RNG.normal(0, 0.02, mask.shape), 0, 1).astype(np.float32)


def test_each_task_gets_its_metric() -> None:
    assert isinstance(pick("sigmoid_0.tmp_0", detector_map()), MaskIoU)
    assert isinstance(pick("maps", detector_map()[:, 0]), MaskIoU)  # [batch, H, W]
    assert isinstance(pick("seg_logits", RNG.normal(size=(2, 5, 16, 16)).astype(np.float32)), MaskIoU)
    assert isinstance(pick("features_map", RNG.normal(size=(2, 64, 16, 16)).astype(np.float32)), Fidelity)
    assert isinstance(pick("sentence_embedding", RNG.normal(size=(3, 384)).astype(np.float32)), Cosine)
    assert isinstance(pick("pooler_output", RNG.normal(size=(3, 768)).astype(np.float32)), Cosine)
    assert isinstance(pick("last_hidden_state", RNG.normal(size=(3, 7, 768)).astype(np.float32)), Cosine)
    assert isinstance(pick("hidden", RNG.normal(size=(3, 768)).astype(np.float32)), Fidelity)
    regression = pick("price", RNG.normal(size=(5, 1)).astype(np.float32))
    assert isinstance(regression, RSquared) and regression.kind == "R² against fp32"
    labelled = pick("price", RNG.normal(size=(5, 1)).astype(np.float32), float_labels=np.ones(5))
    assert isinstance(labelled, RSquared) and labelled.kind == "R² against labels"


def test_a_map_that_agrees_on_almost_every_pixel_scores_near_one() -> None:
    """The issue's text detector: relative error of the raw probabilities called it a 5-point drop."""
    want = detector_map()
    got = want.copy()
    got[:, :, 19, 5:60] = 0.0  # one row of one box lost: most pixels still agree
    got += RNG.normal(0, 0.05, got.shape).astype(np.float32)
    iou = MaskIoU("map").score({"map": got}, {"map": want})
    assert 0.9 < iou < 1.0
    assert Fidelity().score({"map": got}, {"map": want}) < iou
    assert MaskIoU("map").score({"map": np.zeros((1, 1, 8, 8))}, {"map": np.zeros((1, 1, 8, 8))}) == 1.0
    classes = RNG.normal(size=(2, 3, 8, 8))
    assert MaskIoU("seg").score({"seg": classes}, {"seg": classes}) == 1.0


def test_cosine_and_r_squared_score_what_they_should() -> None:
    vectors = RNG.normal(size=(4, 32))
    assert Cosine("e").score({"e": vectors}, {"e": vectors}) == pytest.approx(1.0)
    assert Cosine("e").score({"e": -vectors}, {"e": vectors}) == 0.0
    assert Cosine("e").score({"e": vectors * 3}, {"e": vectors}) == pytest.approx(1.0)
    target = np.linspace(1000, 1010, 20)
    offset = target + 1.0  # 0.1% relative error, but as wrong as predicting the mean over this spread
    assert (
        RSquared("y", None).score({"y": offset}, {"y": target}) < 0.9 < Fidelity().score({"y": offset}, {"y": target})
    )
    assert RSquared("y", target).score({"y": target}, {"y": target * 0}) == 1.0


METRIC = """
import numpy as np

def agreement(outputs, reference):
    return float(np.mean(np.sign(outputs["y"]) == np.sign(reference["y"])))

def broken(outputs, reference):
    return 7
"""


def test_a_user_metric_is_loaded_from_a_file_and_crosses_to_the_measuring_process(tmp_path: Path) -> None:
    path = tmp_path / "metric.py"
    path.write_text(METRIC)
    metric = pick("y", np.ones((3, 1), dtype=np.float32), user=f"{path}:agreement")
    assert isinstance(metric, UserMetric) and metric.kind == "agreement() from metric.py"
    assert metric.score({"y": np.array([1.0, -1.0])}, {"y": np.array([1.0, 1.0])}) == 0.5
    check = QualityCheck(Dataset({"x": np.ones((2, 1), np.float32)}, {"x": 0}, None, "t"), {}, metric, MANIFEST)
    copy = quality_job.read(check.saved(tmp_path)).metric
    assert isinstance(copy, UserMetric) and copy.path == metric.path
    assert copy.score({"y": np.array([1.0])}, {"y": np.array([1.0])}) == 1.0
    with pytest.raises(LambdafitError, match=r"returned 7.0: return a float in \[0, 1\]"):
        UserMetric(f"{path}:broken").score({}, {})
    with pytest.raises(LambdafitError, match="has no function missing"):
        UserMetric(f"{path}:missing").score({}, {})
    with pytest.raises(LambdafitError, match="must be a factory"):
        UserMetric("metric.py")


def test_a_quality_job_reads_back_as_written_without_pickle(tmp_path: Path) -> None:
    """What the measuring process gets: texts, labels, ZipMap outputs and every metric's state, from an
    .npz read with allow_pickle=False and JSON."""
    texts = np.array(["a b", "ccc", "d"], dtype=object)
    data = Dataset({"text": texts, "rate": np.array(16000, np.int64)}, {"text": 0, "rate": None},
                   np.array([2, 0, 1]), "eval.npz")  # fmt: skip
    zipmap = [{0: 0.25, 1: 0.75}, {0: 1.0, 1: 0.0}, {0: 0.5, 1: 0.5}]
    ctc = np.eye(3, dtype=np.float32)[[[1, 2, 2, 0], [2, 0, 0, 0], [1, 0, 0, 0]]]  # "xy", "y", "x"
    reference = {
        "scores": np.arange(6, dtype=np.float32).reshape(3, 2),
        "probabilities": zipmap,
        "ctc": ctc,
        "label": np.array(["dog", "dog", "cat"], dtype=object),  # skl2onnx's string labels
    }
    metrics = [
        Accuracy("scores", np.array([1, 1, 1]), ("cat", "dog")),
        CtcExactMatch("ctc", ["x", "y"], np.array(["xy", "y", "x"])),
        RSquared("scores", None),
        MaskIoU("scores"),
        Fidelity(),
    ]
    for number, metric in enumerate(metrics):
        check = QualityCheck(data, reference, metric, MANIFEST)
        back = quality_job.read(check.saved(tmp_path / str(number)))
        assert type(back.metric) is type(metric) and back.metric.kind == metric.kind
        for name, value in vars(metric).items():
            got = getattr(back.metric, name)
            assert np.array_equal(got, value) if isinstance(value, np.ndarray) else got == value, name
        assert back.data.inputs["text"].dtype == object and list(back.data.inputs["text"]) == list(texts)
        assert back.data.inputs["rate"] == 16000 and back.data.axes == {"text": 0, "rate": None}
        assert back.data.labels is not None and back.data.labels.tolist() == [2, 0, 1]
        assert back.reference["probabilities"] == zipmap
        assert np.array_equal(back.reference["scores"], reference["scores"])
        assert back.reference["label"].dtype == object and list(back.reference["label"]) == ["dog", "dog", "cat"]
        assert back.manifest == MANIFEST
        assert back.metric.score(reference, reference) == metric.score(reference, reference) == 1.0
    assert not list(tmp_path.rglob("*.pkl"))
