"""#10 class 7: the rules packager/interrupt.py gives a signal, each shown with a real signal to this process."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from packager import interrupt


def send(signum: int) -> None:
    os.kill(os.getpid(), signum)
    time.sleep(0.05)  # the handler runs at the next bytecode boundary of the main thread


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_class7_the_first_signal_raises_and_later_ones_cannot_cut_the_cleanup_short(signum: int) -> None:
    cleaned = []
    with interrupt.catching():
        with pytest.raises(interrupt.Interrupted) as caught:
            try:
                send(signum)
            finally:
                send(signal.SIGINT)  # a second Ctrl-C during cleanup is only counted
                cleaned.append(True)
        assert (caught.value.exit_code, caught.value.name) == (128 + signum, signal.Signals(signum).name)
        assert cleaned == [True]
        with pytest.raises(interrupt.Interrupted):
            interrupt.check()  # whoever swallowed it, the signal wins at the next check
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL and interrupt.received() is None


def test_class7_a_deferred_step_finishes_and_then_the_signal_is_raised() -> None:
    steps = []
    with interrupt.catching(), pytest.raises(interrupt.Interrupted), interrupt.deferred():
        send(signal.SIGTERM)
        steps.append("made the folder")
        steps.append("remembered it")
    assert steps == ["made the folder", "remembered it"]


def test_class7_a_signal_before_the_commit_cancels_it_and_one_during_it_is_ignored() -> None:
    committed = []
    with interrupt.catching():
        with pytest.raises(interrupt.Interrupted), interrupt.deferred():
            send(signal.SIGINT)
        with pytest.raises(interrupt.Interrupted), interrupt.committing():
            committed.append("swapped")
    assert committed == []
    with interrupt.catching():
        with interrupt.committing():
            send(signal.SIGTERM)
            committed.append("swapped")
        interrupt.check()
        assert interrupt.received() is None
    assert committed == ["swapped"]


def test_class7_outside_the_cli_nothing_changes() -> None:
    """The handlers the process had stay (default ones, or SIG_IGN when a shell started it in the background)."""
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    interrupt.check()
    with interrupt.deferred(), interrupt.committing():
        assert {signum: signal.getsignal(signum) for signum in before} == before
    assert {signum: signal.getsignal(signum) for signum in before} == before


def test_class7_an_interrupted_child_dies_with_its_workers_and_its_tmpdir(tmp_path: Path) -> None:
    """What compileall -j 0 and pip do: fork workers, write temporary files. All of it goes."""
    script = (
        "import os, sys, tempfile, time\n"
        "open(os.path.join(tempfile.gettempdir(), 'build-tracker'), 'w').close()\n"
        "worker = os.fork()\n"
        "if worker == 0:\n    time.sleep(60)\n"
        f"open({str(tmp_path / 'pids')!r}, 'w').write(f'{{os.getpid()}} {{worker}} {{tempfile.gettempdir()}}')\n"
        "time.sleep(60)\n"
    )
    timer = threading.Timer(2.0, os.kill, (os.getpid(), signal.SIGTERM))
    with interrupt.catching(), pytest.raises(interrupt.Interrupted):
        timer.start()
        interrupt.run_child([sys.executable, "-c", script])
    child, worker, scratch = (tmp_path / "pids").read_text().split()
    time.sleep(0.2)
    for pid in (int(child), int(worker)):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            state = "gone"
        assert state in ("gone", "Z")
    assert not Path(scratch).exists()
