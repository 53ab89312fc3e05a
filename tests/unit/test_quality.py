"""Quality metrics by task: what each output means picks its metric, and each metric scores what it should."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from handlers.manifest import TensorSpec
from packager.errors import LambdafitError
from packager.quality import Cosine, Fidelity, MaskIoU, RSquared, UserMetric, pick_metric

RNG = np.random.default_rng(0)


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


def test_a_user_metric_is_loaded_from_a_file_and_survives_pickling(tmp_path: Path) -> None:
    path = tmp_path / "metric.py"
    path.write_text(METRIC)
    metric = pick("y", np.ones((3, 1), dtype=np.float32), user=f"{path}:agreement")
    assert isinstance(metric, UserMetric) and metric.kind == "agreement() from metric.py"
    assert metric.score({"y": np.array([1.0, -1.0])}, {"y": np.array([1.0, 1.0])}) == 0.5
    copy = pickle.loads(pickle.dumps(metric))
    assert copy.score({"y": np.array([1.0])}, {"y": np.array([1.0])}) == 1.0
    with pytest.raises(LambdafitError, match=r"returned 7.0: return a float in \[0, 1\]"):
        UserMetric(f"{path}:broken").score({}, {})
    with pytest.raises(LambdafitError, match="has no function missing"):
        UserMetric(f"{path}:missing").score({}, {})
    with pytest.raises(LambdafitError, match="must be a factory"):
        UserMetric("metric.py")
