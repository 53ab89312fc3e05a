"""Kill `lambdafit pack` at points of its run read from its progress lines, and see what it leaves.

Used by tests/hostile/test_class7_data_loss.py and bench/hardening.py. The pack runs as its own process
(`python -m packager.cli`, the worktree's code), in a session of its own so that SIGINT can go to the
whole group as a terminal's Ctrl-C does, with a private TMPDIR and an empty working folder, so that
anything it leaves behind is seen.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "examples" / "digits"
PROGRESS_PREFIX = re.compile(r"^(\.\.\. |\d{4}-\d\d-\d\d \d\d:\d\d:\d\d )")
THIRD_PARTY_TMP = frozenset({".ses", "torchinductor_root"})
"""What an uninterrupted pack leaves in TMPDIR too: onnxruntime's session stamp and torch's cache folder."""


@dataclass(frozen=True)
class KillPoint:
    after: str
    """A progress line starting with this text (after the '... ' prefix)."""
    delay: float = 0.0

    def __str__(self) -> str:
        return f"{self.after.split(':')[0]}+{self.delay:g}s"


POINTS = (
    KillPoint("loading"),
    KillPoint("loading", 0.8),
    KillPoint("exporting"),
    KillPoint("exporting", 1.0),
    KillPoint("exporting", 2.5),
    KillPoint("running fp32 at two batch sizes"),
    KillPoint("running fp32 for reference"),
    KillPoint("[1/2] fp32", 0.2),
    KillPoint("[1/2] fp32", 0.45),
    KillPoint("[2/2] slim", 0.3),
    KillPoint("checking", 0.3),
    KillPoint("writing"),
    KillPoint("writing", 1.0),
    KillPoint("writing", 3.0),
    KillPoint("writing", 5.0),
)
"""Every stage of a zip pack of the digits model (about 8 s to 'writing', then about 10 s staging the
zip's dependencies into the hidden folder)."""


@dataclass
class Outcome:
    returncode: int
    reached: bool
    stdout: str
    stderr: str
    tmp_left: list[str] = field(default_factory=list)
    cwd_left: list[str] = field(default_factory=list)
    out_left: list[str] = field(default_factory=list)
    processes_left: list[int] = field(default_factory=list)


def pack_command(output: Path, name: str = "digits") -> list[str]:
    return [
        sys.executable, "-m", "packager.cli", "pack", f"{DIGITS / 'model.py'}:build", "--name", name,
        "--output", str(output), "--recipes", "slim", "--package", "zip", "--force",
    ]  # fmt: skip


def _session_members(sid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def kill_pack(point: KillPoint, signum: int, output: Path, *, group: bool, timeout: float = 180) -> Outcome:
    """Run pack into `output` (which may hold a previous bundle), send `signum` at `point`, wait."""
    with tempfile.TemporaryDirectory(prefix="kill-pack-") as scratch:
        tmp, cwd = Path(scratch) / "tmp", Path(scratch) / "cwd"
        tmp.mkdir()
        cwd.mkdir()
        env = os.environ | {"PYTHONPATH": str(ROOT), "TMPDIR": str(tmp), "LAMBDAFIT_PYTHON": "3.11"}
        env.pop("LAMBDAFIT_DEBUG", None)
        with subprocess.Popen(
            pack_command(output), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        ) as process:  # fmt: skip
            lines: list[str] = []
            stdout: list[str] = []
            seen = threading.Event()

            def read_stderr() -> None:
                assert process.stderr is not None
                for line in process.stderr:
                    lines.append(line)
                    if progress_text(line).startswith(point.after):
                        seen.set()
                seen.set()

            def read_stdout() -> None:
                assert process.stdout is not None
                stdout.append(process.stdout.read())

            readers = [threading.Thread(target=read_stderr), threading.Thread(target=read_stdout)]
            for reader in readers:
                reader.start()
            seen.wait(timeout)
            reached = process.poll() is None
            if reached:
                time.sleep(point.delay)
                (os.killpg if group else os.kill)(process.pid, signum)
            try:
                returncode = process.wait(timeout)
            finally:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)
            for reader in readers:
                reader.join(timeout)
            time.sleep(0.2)  # a child that outlived the pack would still be in its session now
            return Outcome(
                returncode=returncode,
                reached=reached,
                stdout="".join(stdout),
                stderr="".join(lines),
                tmp_left=sorted(p.name for p in tmp.iterdir() if p.name not in THIRD_PARTY_TMP),
                cwd_left=sorted(p.name for p in cwd.iterdir()),
                out_left=sorted(p.name for p in output.iterdir()),
                processes_left=_session_members(process.pid),
            )


def progress_text(line: str) -> str:
    """A progress line without its timestamp (a pipe) or its '... ' (older releases)."""
    return PROGRESS_PREFIX.sub("", line, count=1)


def digest(path: Path) -> str:
    """Everything about a file or tree that a user could lose: names, kinds, link targets, contents."""
    h = hashlib.sha256()
    items = [path] if path.is_symlink() or not path.is_dir() else sorted(path.rglob("*"))
    for item in items:
        h.update(str(item.relative_to(path.parent)).encode())
        if item.is_symlink():
            h.update(b"link:" + os.readlink(item).encode())
        elif item.is_file():
            h.update(item.read_bytes())
        else:
            h.update(b"dir")
    return h.hexdigest()
