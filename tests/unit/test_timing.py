"""Interleaved timing: the confidence interval of a median, and rounds that take turns."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from packager.timing import Plan, interleave, median_interval, percentile


def test_the_interval_of_a_median_comes_from_order_statistics() -> None:
    samples = [float(x) for x in range(1, 13)]  # n = 12: P(Bin(12, 1/2) <= 2) = 79/4096 < 0.025 < P(<= 3)
    assert median_interval(samples) == (6.5, 3.0, 10.0)
    assert median_interval(list(reversed(samples))) == (6.5, 3.0, 10.0)
    n = 100
    median, low, high = median_interval([float(x) for x in range(n)])
    coverage = 1 - 2 * sum(math.comb(n, j) for j in range(int(low))) / 2**n
    assert median == 49.5 and low < median < high and coverage >= 0.95
    assert median_interval([1.0, 9.0, 5.0]) == (5.0, 1.0, 9.0)  # too few for 95%: the whole range
    with pytest.raises(ValueError):
        median_interval([])


def test_percentile_interpolates_like_numpy() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([5.0], 0.95) == 5.0
    assert percentile([0.0, 10.0], 0.95) == pytest.approx(9.5)


def test_rounds_rotate_the_order_and_every_candidate_gets_every_round() -> None:
    log: list[str] = []

    def call(name: str) -> object:
        return lambda: log.append(name)

    plan = Plan(min_rounds=4, max_rounds=4, warmup_calls=0, block_seconds=0.0, batch8_rounds=1)
    results = interleave([(call("A"), call("a")), (call("B"), call("b")), (call("C"), call("c"))], plan)
    assert [r.rounds for r in results] == [4, 4, 4]
    timed = [name for name in log[6:] if name.isupper()]  # after each track's one warm-up call
    firsts = [name for index, name in enumerate(timed) if index % 6 == 0]  # untimed warm call, timed call
    assert firsts == ["A", "B", "C", "A"]
    assert all(r.low_ms <= r.p50_ms <= r.high_ms for r in results)
    assert log.count("a") == log.count("b") == 1 + 2  # warm-up call, then one round: warm call and block


def test_rounds_stop_once_every_interval_is_narrow() -> None:
    plan = Plan(min_rounds=12, max_rounds=500, warmup_calls=0, block_seconds=0.0, target_width=10.0)
    results = interleave([(lambda: None, lambda: None)], plan)
    assert results[0].rounds == 12


def test_the_worker_gets_its_job_as_data_and_times_every_model(tmp_path: Path) -> None:
    """The job crosses to the worker as JSON and an .npz read without pickle (texts too), and the worker
    times each model it was given, in order."""
    import numpy as np

    from handlers.manifest import Manifest, TensorSpec
    from packager.data import Dataset
    from packager.timing import TimingJob, time_candidates
    from tests.unit.test_pack_stages import tiny_model

    manifest = Manifest(
        "tiny", "v", "", (TensorSpec("x", "float32", ("batch", 4), batch_axis=0),),
        (TensorSpec("logits", "float32", ("batch", 3), batch_axis=0),),
    )  # fmt: skip
    texts = np.array(["a", "bc"], dtype=object)
    job = TimingJob((tmp_path / "a.onnx",), manifest, {1: {"x": np.ones((1, 4), np.float32), "t": texts}}, Plan())
    job.write(tmp_path)
    back = TimingJob.read(tmp_path)
    assert back.paths == job.paths and back.manifest == manifest and back.plan == Plan()
    assert np.array_equal(back.feeds[1]["x"], np.ones((1, 4), np.float32))
    assert back.feeds[1]["t"].dtype == object and list(back.feeds[1]["t"]) == ["a", "bc"]
    assert not list(tmp_path.glob("*.pkl"))

    models = [tiny_model(tmp_path / "one.onnx"), tiny_model(tmp_path / "two.onnx")]
    data = Dataset({"x": np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)}, {"x": 0}, None, "t")
    timings = time_candidates(models, data, manifest, Plan(min_rounds=3, max_rounds=3, seconds_per_candidate=0.05))
    assert len(timings.latencies) == 2 and timings.peak_rss_mb > 0
    for latency in timings.latencies:
        assert 0 < latency.low_ms <= latency.p50_ms <= latency.high_ms and latency.p50_batch8_ms > 0
