"""A CPU quota for one process tree: the share of a CPU Lambda gives a function of a given memory size.

Lambda gives a function one vCPU per 1,769 MB, enforced as CPU time per period; up to 3,008 MB the
function sees two cores (rwnx/lambda-cpuinfo), which is what a 2-core machine shows too. The same kernel
control limits the measuring process here: a cgroup's CFS bandwidth (`cpu.max` in cgroup v2,
`cpu.cfs_quota_us` / `cpu.cfs_period_us` in v1), which is what `docker run --cpus=X` writes. It needs
root (or a delegated cgroup); where neither is available, `CgroupQuota.create` says so.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from packager.errors import LambdafitError

CGROUP_ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 100_000
"""docker's --cpus period. Lambda does not publish its own; see packager.memory for what that changes."""
MIN_QUOTA_US = 1_000


class QuotaUnavailableError(LambdafitError):
    """No cgroup this process may create and limit."""


@dataclass(frozen=True)
class CgroupQuota:
    path: Path
    v2: bool

    @classmethod
    def create(cls, name: str, root: Path = CGROUP_ROOT) -> CgroupQuota:
        """A new, empty cgroup with a CPU controller, under the v2 hierarchy or v1's cpu hierarchy."""
        candidates = []
        if "cpu" in _read(root / "cgroup.subtree_control").split():
            candidates.append((root, True))
        if (root / "cpu" / "cpu.cfs_quota_us").is_file():
            candidates.append((root / "cpu", False))
        for parent, v2 in candidates:
            path = parent / name
            try:
                path.mkdir()
            except OSError:
                continue
            quota = cls(path, v2)
            try:
                quota.limit(1.0)
            except OSError:
                path.rmdir()
                continue
            return quota
        raise QuotaUnavailableError(
            "cannot create a cgroup with a CPU quota here (it needs root, or a delegated cgroup v2 with the cpu "
            "controller): the memory size is not measured under Lambda's CPU share"
        )

    def limit(self, vcpus: float) -> None:
        """At most `vcpus` CPUs' worth of time per period, for every process in the group."""
        quota = max(MIN_QUOTA_US, round(vcpus * PERIOD_US))
        if self.v2:
            (self.path / "cpu.max").write_text(f"{quota} {PERIOD_US}\n")
        else:
            (self.path / "cpu.cfs_period_us").write_text(f"{PERIOD_US}\n")
            (self.path / "cpu.cfs_quota_us").write_text(f"{quota}\n")

    def enter(self, pid: int | None = None) -> None:
        """Move a process (this one by default) into the group; threads it starts later follow it."""
        (self.path / "cgroup.procs").write_text(f"{pid or os.getpid()}\n")

    def throttled_us(self) -> int:
        """Time the group spent throttled so far (cpu.stat), to tell that the quota bites."""
        for line in _read(self.path / "cpu.stat").splitlines():
            key, _, value = line.partition(" ")
            if key in ("throttled_usec", "throttled_time"):
                return int(value) // (1 if key == "throttled_usec" else 1000)
        return 0

    def remove(self) -> None:
        """Delete the group; its processes must have exited (or left) first."""
        with contextlib.suppress(OSError):
            self.path.rmdir()


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
