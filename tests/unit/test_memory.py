"""Memory chosen by cost, latency or both, from sizes measured under Lambda's CPU share."""

from __future__ import annotations

import pytest

from packager.config import Arch, MemoryObjective, PackConfig
from packager.memory import SweepPoint, choose, floor_mb, intra_op_threads, sweep_sizes, thread_choices


def point(memory: int, mean_ms: float) -> SweepPoint:
    return SweepPoint.measured(
        Arch.X86_64,
        {"memory_mb": memory, "mean_ms": mean_ms, "p50_ms": mean_ms, "p95_ms": mean_ms, "billed_ms": float(-(-mean_ms // 1)),
         "calls": 10, "throttled_ms": 0.0},
    )  # fmt: skip


# A model that takes 100 ms of one core: duration follows the share up to one vCPU, then barely moves.
POINTS = tuple(point(m, 100 * 1769 / m if m < 1769 else 100.0 - (m - 1769) / 400) for m in (512, 1024, 1769, 3008))


def test_the_floor_is_peak_rss_with_headroom_and_the_sweep_stops_where_two_cores_stop_standing_in() -> None:
    assert floor_mb(50) == 128 and floor_mb(700) == 960
    assert sweep_sizes(128)[:3] == (128, 256, 512) and max(sweep_sizes(128)) == 3008
    assert sweep_sizes(960) == (960, 1024, 1536, 1769, 2048, 2560, 3008)


def test_cost_takes_the_fastest_of_the_sizes_tied_for_cheapest() -> None:
    choice = choose(POINTS, MemoryObjective.COST, 512, "test")
    assert [round(p.usd_per_million, 2) for p in POINTS] == [3.08, 3.08, 3.08, 4.95]
    assert choice.chosen.memory_mb == 1769 and "3 size(s) within 5%" in choice.why


def test_latency_takes_the_cheapest_of_the_sizes_tied_for_fastest() -> None:
    choice = choose(POINTS, MemoryObjective.LATENCY, 512, "test")
    assert choice.chosen.memory_mb == 1769  # 3008 MB is 3% faster: a tie, and 60% dearer


def test_balanced_weighs_normalized_cost_and_duration_as_power_tuning_does() -> None:
    points = (point(128, 1000.0), point(512, 260.0), point(1024, 150.0), point(3008, 140.0))
    assert choose(points, MemoryObjective.BALANCED, 128, "test").chosen.memory_mb == 1024
    assert choose(points, MemoryObjective.COST, 128, "test").chosen.memory_mb == 512


def test_arm64_prices_are_lower() -> None:
    raw = {
        "memory_mb": 1024,
        "mean_ms": 10.0,
        "p50_ms": 10.0,
        "p95_ms": 10.0,
        "billed_ms": 10.0,
        "calls": 1,
        "throttled_ms": 0.0,
    }
    assert SweepPoint.measured(Arch.ARM64, raw).usd_per_million < SweepPoint.measured(Arch.X86_64, raw).usd_per_million


def test_the_objective_is_an_option_with_a_fix_it_message() -> None:
    assert (
        PackConfig(model="m.onnx", name="m", memory_objective="balanced").memory_objective is MemoryObjective.BALANCED
    )  # type: ignore[arg-type]
    with pytest.raises(Exception, match="cost, latency, balanced"):
        PackConfig(model="m.onnx", name="m", memory_objective="cheap")  # type: ignore[arg-type]


def test_a_size_that_got_less_cpu_than_its_share_is_flagged_as_measured_on_a_busy_machine() -> None:
    raw = {"memory_mb": 1769, "mean_ms": 10.0, "p50_ms": 10.0, "p95_ms": 10.0, "billed_ms": 10.0, "calls": 5,
           "throttled_ms": 0.0}  # fmt: skip
    quiet = SweepPoint.measured(Arch.X86_64, raw | {"cpu_vcpus": 0.95})
    busy = SweepPoint.measured(Arch.X86_64, raw | {"cpu_vcpus": 0.4})
    assert not quiet.contended and busy.contended
    assert choose((quiet,), MemoryObjective.COST, 1769, "t").contention_note is None
    note = choose((busy,), MemoryObjective.COST, 1769, "t").contention_note
    assert note is not None and "at 1769 MB" in note


def test_one_onnxruntime_thread_below_one_vcpu_and_both_counts_measured_from_there() -> None:
    assert thread_choices(1024) == (1,) and thread_choices(1769) == (1, None)
    assert intra_op_threads(512) == 1 and intra_op_threads(3008) is None
    raw = {
        "memory_mb": 2048,
        "mean_ms": 1.0,
        "p50_ms": 1.0,
        "p95_ms": 1.0,
        "billed_ms": 1.0,
        "calls": 5,
        "throttled_ms": 0.0,
    }
    assert SweepPoint.measured(Arch.X86_64, raw | {"threads": 1}).threads == 1
