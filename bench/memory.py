"""MemorySize by measurement: each bundle's handler under the CPU quota of every size, and the size each
objective picks (packager.memory; the same sweep `pack` runs).

    .venv/bin/python bench/memory.py BUNDLE [BUNDLE ...]    # e.g. build/digits build/bert

Needs root (or a delegated cgroup v2): the quota is a cgroup's CPU bandwidth, as `docker run --cpus`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from packager.bundle import read_app  # noqa: E402
from packager.config import MemoryObjective  # noqa: E402
from packager.memory import choose, floor_mb, sweep, sweep_sizes  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundles", type=Path, nargs="+")
    args = parser.parse_args()
    for bundle in args.bundles:
        report = json.loads((bundle / "report.json").read_text())
        chosen = next(c for c in report["candidates"] if c["recipe"] == report["chosen"])
        peak = chosen["metrics"]["peak_rss_mb"]
        app = read_app(bundle)
        floor = floor_mb(peak)
        measured = sweep(bundle / "function" / "model", sweep_sizes(floor), MemoryObjective.COST, app.arch, floor)
        print(f"\n## {bundle.name} ({report['chosen']}, peak RSS {peak:.0f} MB, floor {floor} MB)\n")
        print("\n".join(measured.table()).replace("CHOSEN", "cost"))
        for objective in MemoryObjective:
            choice = choose(measured.points, objective, floor, measured.method)
            print(f"\n- {objective.value}: **{choice.chosen.memory_mb} MB**, {choice.why}")
        print(f"\nmeasured with {measured.method}")


if __name__ == "__main__":
    main()
