"""Whether a bundle uses Lambda SnapStart, and what SnapStart would charge for it.

SnapStart (Python 3.12+, zip and, since July 2026, container images) runs the init phase once per
published version and starts sandboxes from a snapshot of it. It cannot be combined with provisioned
concurrency, EFS, or more than 512 MB of ephemeral storage; no tool (sam validate, cfn-lint, checkov)
catches those combinations, so `conflicts` does, at pack time.

On by default where it pays: when the model's cold load (onnxruntime session plus first inference, as
measured in a fresh process and slowed to the function's CPU share) takes at least `PAYS_FROM_MS`. Below
that a restore, which itself takes a few hundred ms for a Python snapshot and is charged per GB, saves
little; the imports that SnapStart would also skip (numpy, onnxruntime, powertools: ~0.1-0.2 s) are the
same for every bundle and do not change the choice.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from packager.errors import LambdafitError

SNAPSTART_PYTHONS = ("3.12", "3.13")
MAX_EPHEMERAL_MB = 512
PAYS_FROM_MS = 500.0
CACHE_USD_PER_GB_SECOND = 0.0000015046
"""Per published version with SnapStart, for as long as it is active (minimum 3 hours); us-east-1."""
RESTORE_USD_PER_GB = 0.0001397998
"""Per restore, per GB of the function's memory; us-east-1."""
SECONDS_PER_MONTH = 30 * 24 * 3600


class SnapStartError(LambdafitError):
    """SnapStart was asked for where Lambda cannot apply it."""


def conflicts(python: str, provisioned_concurrency: int | None, ephemeral_mb: int) -> list[str]:
    """Why SnapStart cannot apply to this function; empty when it can."""
    found = []
    if python not in SNAPSTART_PYTHONS:
        found.append(f"python{python} has no SnapStart (Python 3.12 and later do)")
    if provisioned_concurrency:
        found.append("provisioned concurrency cannot be combined with SnapStart: drop --provisioned-concurrency")
    if ephemeral_mb > MAX_EPHEMERAL_MB:
        found.append(
            f"the function needs {ephemeral_mb} MB of /tmp for the model it fetches from S3, over SnapStart's "
            f"{MAX_EPHEMERAL_MB} MB: ship the model in the package instead of --model-store"
        )
    return found


@dataclass(frozen=True)
class SnapStartCharges:
    memory_mb: int
    cache_usd_per_version_month: float
    """Keeping one published version's snapshot cached for 30 days."""
    restore_usd_per_thousand: float
    """1,000 sandboxes restored from the snapshot (cold starts)."""

    @classmethod
    def at(cls, memory_mb: int) -> SnapStartCharges:
        gb = memory_mb / 1024
        return cls(
            memory_mb=memory_mb,
            cache_usd_per_version_month=round(gb * SECONDS_PER_MONTH * CACHE_USD_PER_GB_SECOND, 4),
            restore_usd_per_thousand=round(1000 * gb * RESTORE_USD_PER_GB, 4),
        )


@dataclass(frozen=True)
class SnapStartChoice:
    enabled: bool
    why: str
    charges: SnapStartCharges

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        c = self.charges
        state = "on" if self.enabled else "off"
        return (
            f"SnapStart {state}: {self.why}. At {c.memory_mb} MB it charges about ${c.cache_usd_per_version_month:.2f} "
            f"a month per published version kept (cache; versions no alias points to can be deleted) and "
            f"${c.restore_usd_per_thousand:.3f} per 1,000 cold starts (restores), us-east-1 prices"
        )


def decide(
    asked: bool | None,
    *,
    python: str,
    provisioned_concurrency: int | None,
    ephemeral_mb: int,
    cold_load_ms: float,
    memory_mb: int,
    cpu_share: float,
) -> SnapStartChoice:
    """`asked` is --snapstart (True), --no-snapstart (False) or neither (None: on where it pays).
    `cold_load_ms` is measured on the packing machine's full core; `cpu_share` is the function's vCPU share."""
    charges = SnapStartCharges.at(memory_mb)
    reasons = conflicts(python, provisioned_concurrency, ephemeral_mb)
    if asked is True and reasons:
        raise SnapStartError(f"--snapstart cannot apply: {'; '.join(reasons)}")
    if asked is False:
        return SnapStartChoice(False, "--no-snapstart", charges)
    if reasons:
        return SnapStartChoice(False, reasons[0], charges)
    at_share = cold_load_ms / min(1.0, cpu_share)
    if asked is True:
        return SnapStartChoice(
            True, f"--snapstart (cold model load {at_share:.0f} ms at {cpu_share:.2f} vCPU)", charges
        )
    if at_share >= PAYS_FROM_MS:
        return SnapStartChoice(
            True,
            f"the cold model load takes {at_share:.0f} ms at {cpu_share:.2f} vCPU, over {PAYS_FROM_MS:.0f} ms",
            charges,
        )
    return SnapStartChoice(
        False,
        f"the cold model load takes {at_share:.0f} ms at {cpu_share:.2f} vCPU, under the {PAYS_FROM_MS:.0f} ms from "
        "which a restore pays; --snapstart turns it on anyway",
        charges,
    )
