"""Interleaved timing: the confidence interval of a median, and rounds that take turns."""

from __future__ import annotations

import math

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
