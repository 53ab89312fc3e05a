"""Lambda memory size from measured peak memory, and what a million requests would cost at it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from packager.config import Arch

MIN_MEMORY_MB = 512
MAX_MEMORY_MB = 10_240
HEADROOM = 1.3
MB_PER_VCPU = 1769
PRICE_PER_GB_SECOND = {Arch.X86_64: 0.0000166667, Arch.ARM64: 0.0000133334}
PRICE_PER_MILLION_REQUESTS = 0.20
"""us-east-1 on-demand list prices; API Gateway is billed separately."""


@dataclass(frozen=True)
class CostEstimate:
    memory_mb: int
    duration_ms: float
    usd_per_million: float
    assumptions: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def memory_for(peak_rss_mb: float) -> int:
    """Peak RSS with 30% headroom, in 64 MB steps, between 512 MB and Lambda's 10,240 MB."""
    wanted = math.ceil(peak_rss_mb * HEADROOM / 64) * 64
    return int(min(MAX_MEMORY_MB, max(MIN_MEMORY_MB, wanted)))


def estimate(peak_rss_mb: float, p50_ms: float, arch: Arch) -> CostEstimate:
    memory = memory_for(peak_rss_mb)
    vcpus = min(6.0, memory / MB_PER_VCPU)
    duration = p50_ms / min(1.0, vcpus)
    billed = math.ceil(duration)
    compute = 1_000_000 * (memory / 1024) * (billed / 1000) * PRICE_PER_GB_SECOND[arch]
    return CostEstimate(
        memory_mb=memory,
        duration_ms=duration,
        usd_per_million=round(compute + PRICE_PER_MILLION_REQUESTS, 4),
        assumptions=(
            f"p50 at batch 1 measured here, as one core's work slowed to Lambda's {vcpus:.2f} vCPU share at "
            f"{memory} MB, billed per ms; us-east-1 {arch.value} prices; API Gateway not included"
        ),
    )
