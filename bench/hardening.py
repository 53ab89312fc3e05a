"""#10's evidence for the packager and `lambdafit serve`, as counts: `pack` killed with SIGINT and
SIGTERM at every point of tests/hostile/killing.py, hostile request framings, a burst of new
connections, and serve --workers 2 stopped every way an operator stops it.

    .venv/bin/python bench/hardening.py          # about 8 minutes on two cores; no Docker, no network

Each kill is judged on the three properties of #10 class 7: the exit code says which signal
interrupted it (130 or 143), the previous bundle is bit for bit what it was, and nothing is left (no
hidden staging folder beside it, no lambdafit-* folder in TMPDIR, nothing in the working folder, no
process of its session). A kill that lands after the new bundle is in place counts as "finished".
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")

from packager import emulator  # noqa: E402
from packager.config import PackConfig  # noqa: E402
from packager.pack import pack  # noqa: E402
from tests.hostile.killing import POINTS, digest, kill_pack  # noqa: E402
from tests.hostile.server_checks import FRAMING, burst, exchange, listen_counters, serve_and_stop  # noqa: E402

DIGITS = ROOT / "examples" / "digits"


def kills(previous: Path, work: Path) -> Counter[str]:
    out = work / "out"
    shutil.copytree(previous, out / "digits", symlinks=True)
    before = digest(out / "digits")
    counts: Counter[str] = Counter()
    for signum, group in ((signal.SIGINT, True), (signal.SIGTERM, False)):
        for point in POINTS:
            outcome = kill_pack(point, signum, out, group=group)
            left = outcome.out_left != ["digits"] or outcome.tmp_left or outcome.cwd_left or outcome.processes_left
            if outcome.returncode == 0 and "wrote " in outcome.stdout and not left:
                verdict = "finished before the signal"
                shutil.rmtree(out / "digits")
                shutil.copytree(previous, out / "digits", symlinks=True)
            elif outcome.returncode == 128 + signum and digest(out / "digits") == before and not left:
                verdict = "interrupted, previous bundle intact, nothing left"
            else:
                verdict = (
                    f"BAD (exit {outcome.returncode}, left {outcome.out_left} {outcome.tmp_left} {outcome.cwd_left})"
                )
            counts[f"{signal.Signals(signum).name}: {verdict}"] += 1
            print(
                f"  {signal.Signals(signum).name:7} at {point!s:24} exit {outcome.returncode:4}  {verdict}", flush=True
            )
    return counts


def framings(bundle: Path) -> Counter[str]:
    server = emulator.serve_bundle(bundle, port=0)
    emulator._RequestHandler.timeout = 2
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    counts: Counter[str] = Counter()
    try:
        for name, (data, status, code, half_close) in FRAMING.items():
            responses = exchange(server.server_address[1], data, half_close=half_close)
            got = [(r[0], json.loads(r[2]).get("code")) for r in responses]
            ok = got == [(status, code)] and responses[0][1].get("connection") == "close"
            counts["JSON refusal as expected" if ok else f"BAD {name}: {got}"] += 1
        before = listen_counters()
        answers = burst(server.server_address[1])
        counts[f"burst of 100 new connections: {answers.count(200)} answered 200"] += 1
        dropped = sum(listen_counters().values()) - sum(before.values())
        counts[f"burst: {dropped} connections dropped by the kernel"] += 1
    finally:
        server.shutdown()
        server.server_close()
    return counts


def stops(bundle: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    for name, signum, group in (("SIGTERM", signal.SIGTERM, False), ("SIGINT", signal.SIGINT, False),
                                ("Ctrl-C (group)", signal.SIGINT, True), ("SIGKILL", signal.SIGKILL, False)):  # fmt: skip
        outcome = serve_and_stop(bundle, signum, group=group, workers=2)
        counts[
            f"serve --workers 2, {name}: exit {outcome.returncode}, {outcome.answers.count(200)}/100 answered, "
            f"{len(outcome.workers_left)} workers and {len(outcome.listeners_left)} listeners left, "
            f"port reusable: {outcome.port_reusable}"
        ] += 1
    return counts


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="hardening-") as tmp:
        work = Path(tmp)
        print("packing the digits example once (the previous bundle, and the one served)", flush=True)
        bundle = pack(
            PackConfig(
                model=f"{DIGITS / 'model.py'}:build",
                name="digits",
                output_dir=work / "first",
                eval_data=DIGITS / "eval.npz",
                python="3.11",
                recipes=("slim",),
            )
        ).bundle
        print(f"pack killed at {len(POINTS)} points with SIGINT (to the group) and SIGTERM (to pack):", flush=True)
        results = kills(bundle, work) + framings(bundle) + stops(bundle)
    print("\nsummary")
    for line, count in sorted(results.items()):
        print(f"{count:4}  {line}")


if __name__ == "__main__":
    main()
