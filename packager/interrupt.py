"""SIGINT and SIGTERM during `pack`: an interruption, wherever they land, that leaves nothing behind.

Inside `catching()` the first signal raises `Interrupted` in the main thread. It is a BaseException,
so no `except Exception` (lambdafit's, torch's, onnxruntime's) takes it for a failure, and every `with`
block on the way out removes what it made; later signals are only recorded, so they cannot cut that
cleanup short. A library can still lose the exception (a lazy import in torch that it interrupts leaves
a half-initialised module, and the export then fails with an AttributeError instead): `check()` at the
places that turn failures into errors or fallbacks raises it again, and the CLI reports any error after
a signal as the interruption. `committing()` guards the one step that makes the work permanent; `run_child()`
runs a subprocess that cannot outlive an interruption or leave files behind.

Outside `catching()` (Python callers, tests) nothing changes: check() never raises, SIGINT is Python's
KeyboardInterrupt.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """The process got SIGINT or SIGTERM; `exit_code` is the shell's 128 + signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@dataclass
class _State:
    signum: int | None = None
    deferring: int = 0
    committed: bool = False


_state: _State | None = None


def _on_signal(signum: int, frame: FrameType | None) -> None:
    state = _state
    if state is None or state.committed or state.signum is not None:
        return
    state.signum = signum
    if not state.deferring:
        raise Interrupted(signum)


@contextlib.contextmanager
def catching() -> Iterator[None]:
    """SIGINT and SIGTERM raise `Interrupted` in this block (main thread only; elsewhere a no-op)."""
    global _state
    if threading.current_thread() is not threading.main_thread() or _state is not None:
        yield  # another thread, or inside an outer catching() that already owns the handlers
        return
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    _state = _State()
    for signum in SIGNALS:
        signal.signal(signum, _on_signal)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _state = None


def settle() -> None:
    """The work is over (done, failed or interrupted): signals from here to the end of `catching()` are
    ignored, so that printing the outcome is never cut into a traceback or a second exit code."""
    if _state is not None:
        _state.committed = True


def received() -> int | None:
    """The signal that interrupted this run, if one did and the work was not yet committed."""
    state = _state
    return None if state is None or state.committed else state.signum


def check() -> None:
    """Raise the interruption again if a signal came and something swallowed or deferred it."""
    signum = received()
    if signum is not None:
        raise Interrupted(signum)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """A step that must not be cut in two (making a folder and remembering it): a signal during it is
    raised when it ends."""
    state = _state
    if state is None:
        yield
        return
    state.deferring += 1
    try:
        yield
    finally:
        state.deferring -= 1
    if not state.deferring:
        check()


@contextlib.contextmanager
def committing() -> Iterator[None]:
    """The step that makes the work permanent. A signal before it cancels the work; once it starts it
    runs to the end, and a signal from then on is ignored: the work is done."""
    state = _state
    if state is None:
        yield
        return
    state.deferring += 1
    try:
        check()
        yield
        state.committed = True
    finally:
        state.deferring -= 1


def run_child(command: list[str], *, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """`subprocess.run(command, capture_output=True, text=True)` for a child that ends with us: it runs
    in a process group of its own (with any workers it forks, as compileall does), killed whole when
    this process is interrupted or the timeout passes, and with a TMPDIR of its own, removed after it
    (a killed pip leaves its build trackers there)."""
    with tempfile.TemporaryDirectory(prefix="lambdafit-child-") as scratch:
        env = os.environ | {"TMPDIR": scratch}
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
        ) as process:
            try:
                stdout, stderr = process.communicate(timeout=timeout)
            except BaseException:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
