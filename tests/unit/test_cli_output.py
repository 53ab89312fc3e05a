"""What the CLI prints, captured from its own process: on a real terminal (a pty) at 80, 100, 120 and
200 columns and in a pipe. Every number the report holds must be readable whole; a pipe gets no ANSI
codes and timestamped progress lines. Measuring is faked (tests/unit/cli_driver.py); the rest is real."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.unit.test_pack_stages import tiny_model

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
WIDTHS = (80, 100, 120, 200)
RECIPES = "copy,copy+shrink,copy+shrink+lossy,copy+broken"


def driver(*args: str) -> list[str]:
    return [sys.executable, "-m", "tests.unit.cli_driver", *args]


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "FORCE_COLOR", "NO_COLOR")}
    return env | {"TERM": "xterm-256color", "PYTHONPATH": str(ROOT), "LAMBDAFIT_PYTHON": "3.12"}


def in_terminal(args: list[str], columns: int, cwd: Path) -> str:
    """Run `args` with stdin, stdout and stderr on a pseudo-terminal `columns` wide; what it showed."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    process = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=environment())
    os.close(slave)
    chunks = []
    with contextlib.suppress(OSError):
        while chunk := os.read(master, 65536):
            chunks.append(chunk)
    os.close(master)
    assert process.wait(timeout=120) in (0, 2)
    return b"".join(chunks).decode("utf-8", errors="replace")


def in_pipe(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=environment(), capture_output=True, text=True, timeout=120, check=False)


def screen(raw: str) -> list[str]:
    """The lines as they stand on the screen once the progress bar is gone: ANSI removed, carriage
    returns and line erasures applied."""
    lines = []
    for line in raw.replace("\r\n", "\n").split("\n"):
        line = line.split("\r")[-1]
        lines.append(ANSI.sub("", line))
    return lines


def numbers_of(report: dict[str, object]) -> list[str]:
    """How the table writes each figure of each measured candidate."""
    texts = []
    for candidate in report["candidates"]:  # type: ignore[attr-defined]
        metrics = candidate["metrics"]
        if metrics is None:
            continue
        texts += [f"{candidate['package_bytes'] / 1e6:.1f}", f"{metrics['quality']:.4f}", f"{metrics['p50_ms']:.3f}"]
    return texts


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("project")
    tiny_model(folder / "tiny.onnx")
    (folder / "lambdafit.toml").write_text(
        f'model = "tiny.onnx"\nname = "tiny"\nrecipes = "{RECIPES}"\npython = "3.12"\npackage-type = "zip"\n'
    )
    return folder


@pytest.mark.parametrize("columns", WIDTHS)
def test_pack_on_a_terminal_fits_the_width_and_every_number_is_whole(project: Path, columns: int) -> None:
    raw = in_terminal(driver("pack", "--force", "-o", f"out{columns}"), columns, project)
    lines = screen(raw)
    report = json.loads((project / f"out{columns}" / "tiny" / "report.json").read_text())
    table = [line for line in lines if line.rstrip()]
    assert max(len(line.rstrip()) for line in table) <= columns, "\n".join(table)
    tokens = {token for line in lines for token in line.split()}
    for number in numbers_of(report):
        assert number in tokens, (number, "\n".join(lines))
    assert "…" not in raw
    assert "\x1b[" in raw  # styled: it is a terminal
    text = "\n".join(lines)
    assert "candidates for tiny" in text and "CHOSEN" in text and "chose copy+shrink" in text
    assert "measured in" in text  # a line per finished recipe, above the (transient) bar
    if columns == 80:
        assert "not shown at 80 columns" in text
    print(f"--- {columns} columns ---\n{text}")


def test_pack_in_a_pipe_has_no_ansi_and_logs_each_stage_with_a_timestamp(project: Path) -> None:
    result = in_pipe(driver("pack", "--force", "-o", "piped"), project)
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout + result.stderr
    stamped = [line for line in result.stderr.splitlines() if re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", line)]
    assert any("[2/5] copy: transforming and measuring" in line for line in stamped)
    left = r"\((about \d+ s|under a second) left\)"
    assert any(re.search(rf"\[2/5\] copy measured in \d+\.\d s {left}", line) for line in stamped)
    assert any("writing" in line for line in stamped)
    report = json.loads((project / "piped" / "tiny" / "report.json").read_text())
    tokens = set(result.stdout.split())
    assert all(number in tokens for number in numbers_of(report))
    print(result.stderr + result.stdout)


def test_pack_json_prints_only_the_report(project: Path) -> None:
    result = in_pipe(driver("pack", "--force", "-o", "json", "--json"), project)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["chosen"] == "copy+shrink" and document["bundle"].endswith("tiny")


def test_a_flag_wins_over_the_file(project: Path) -> None:
    result = in_pipe(driver("pack", "--force", "-o", "flag", "--recipes", "copy", "--json"), project)
    assert result.returncode == 0, result.stderr
    assert [c["recipe"] for c in json.loads(result.stdout)["candidates"]] == ["fp32", "copy"]


@pytest.mark.parametrize("columns", (80, 120))
def test_help_shows_defaults_and_reads_at_any_width(columns: int, tmp_path: Path) -> None:
    raw = in_terminal(driver("pack", "--help"), columns, tmp_path)
    lines = screen(raw)
    assert max(len(line.rstrip()) for line in lines) <= columns
    text = " ".join(" ".join(lines).split())
    for shown in ("[default: 0.01]", "[default: build]", "[default: x86_64]", "[default: auto]", "[default: 5; x>=1]",
                  "[default: $LAMBDAFIT_PYTHON, else 3.12]", "[default: rest]", "[default: iam]"):  # fmt: skip
        assert shown in text, shown


def test_version() -> None:
    result = in_pipe(driver("--version"), ROOT)
    assert re.fullmatch(r"lambdafit \d+\.\d+\.\d+ \(python 3\.\d+\.\d+\)\n", result.stdout)


def test_a_narrow_terminal_keeps_the_recipe_and_the_verdict(project: Path) -> None:
    raw = in_terminal(driver("pack", "--force", "-o", "narrow"), 60, project)
    text = "\n".join(screen(raw))
    assert "copy+shrink+lossy" in text and "CHOSEN" in text and "drop 2.22" in text
    assert "not shown at 60 columns:" in text


def test_errors_are_one_plain_line_in_a_pipe(tmp_path: Path) -> None:
    result = in_pipe(driver("pack"), tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: give the model and --name on the command line, or model and name")
    assert "\x1b" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
