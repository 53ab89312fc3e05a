"""`lambdafit` as a user runs it: `packager.cli.main()` (the entry point, with its exit codes and its
"internal error" catch-all), in this process, with stdout and stderr captured."""

from __future__ import annotations

import contextlib
import io
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("error:")]


def run_cli(*args: str) -> Result:
    from packager import cli

    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["lambdafit", *args]
    code: int | str | None = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            cli.main()
    except SystemExit as exit_:
        code = exit_.code
    finally:
        sys.argv = argv
    return Result(code if isinstance(code, int) else (0 if code is None else 1), out.getvalue(), err.getvalue())
