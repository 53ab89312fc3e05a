"""How the CLI writes to people and to logs: the same words on a terminal and in a pipe, styled only on
a terminal (rich emits no ANSI codes elsewhere), tables that fit the width they get, and `pack`'s
progress as a bar with an ETA on a terminal or as timestamped lines in CI logs."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console
from rich.table import Table

from packager.progress import RecipeStep

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from packager.fit import Judged


PROGRESS_STAMP = "%Y-%m-%d %H:%M:%S"
_PROGRESS_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")


def messages(stderr: str) -> list[str]:
    """The lines of a CLI's stderr that are not `pack`'s timestamped progress: what it has to say."""
    return [line for line in stderr.splitlines() if line.strip() and not _PROGRESS_LINE.match(line)]


def make_console(*, stderr: bool = False) -> Console:
    """A console that styles only a terminal; in a pipe it is plain text at $COLUMNS (or 80) columns."""
    return Console(stderr=stderr, highlight=False, emoji=False)


def say(console: Console, text: str) -> None:
    """One message: wrapped at words on a terminal, one line per message in a pipe (for grep and logs)."""
    console.print(text, highlight=False, markup=False, soft_wrap=not console.is_terminal)


@dataclass(frozen=True)
class Column:
    name: str
    """The key in packager.report.cells()."""
    header: str
    keep: int
    """Lower is kept longer: a narrow terminal drops the highest numbers first."""
    numeric: bool = True


CANDIDATE_COLUMNS = (
    Column("recipe", "recipe", 0, numeric=False),
    Column("package MB", "package MB", 1),
    Column("quality", "quality", 1),
    Column("drop pts", "drop pts", 2),
    Column("p50 b1 ms", "p50 ms b1", 2),
    Column("model MB", "model MB", 3),
    Column("p50 b8 ms", "p50 ms b8", 4),
    Column("peak RSS MB", "peak RSS MB", 5),
    Column("params", "params", 6),
    Column("init ms", "init ms", 7),
    Column("p95 b1 ms", "p95 ms b1", 8),
    Column("verdict", "verdict", 0, numeric=False),
)
"""The terminal's view of packager.report's columns: the budget goes in the title, once."""


def candidates_table(judged: Judged, budget_bytes: int, name: str, width: int) -> Table:
    """The candidates as wide as `width` allows: every column that fits at its narrowest (numbers are
    never broken, only wrapped at spaces), the rest named in the caption."""
    from packager.report import cells

    rows = cells(judged, budget_bytes)
    title = f"candidates for {name}: quality is {judged.baseline.quality_kind}, budget {budget_bytes / 1e6:,.0f} MB"
    levels = sorted({column.keep for column in CANDIDATE_COLUMNS}, reverse=True)
    for level in levels:
        shown = [column for column in CANDIDATE_COLUMNS if column.keep <= level]
        widths = column_widths(shown, rows, width - COLUMN_GAP * (len(shown) - 1))
        if widths is not None:
            break
    fixed: list[int | None] = list(widths) if widths is not None else [None] * len(shown)  # else rich folds them
    table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title_justify="left")
    for column, width_of in zip(shown, fixed, strict=True):
        table.add_column(column.header, justify="right" if column.numeric else "left", width=width_of, overflow="fold")
    for row in rows:
        table.add_row(*(row[column.name] for column in shown), style="bold" if row["verdict"] == "CHOSEN" else None)
    left_out = [column.name for column in CANDIDATE_COLUMNS if column not in shown]
    if left_out:
        table.caption = f"not shown at {width} columns: {', '.join(left_out)} (report.md has every column; --json too)"
        table.caption_justify = "left"
    return table


COLUMN_GAP = 3
"""Between two columns of a SIMPLE_HEAD table: a space of padding on each side and the (blank) rule."""
VERDICT_MIN = 12
"""Verdicts wrap (at spaces, or anywhere in a longer word) down to this width."""
RECIPE_MIN = 24
"""Recipe names stay whole up to this length: `prune-0.5+slim+int8-static` is the longest kind."""


def column_widths(columns: list[Column], rows: list[dict[str, str]], room: int) -> list[int] | None:
    """Widths that fit `room`, or None. Everything starts on one line; then, in this order, until it
    fits: the verdict wraps, headers wrap, numbers wrap at their spaces (`0.057 (0.85x)` on two lines),
    recipe names wrap. A number itself is never cut."""
    cells = [[row[column.name] for row in rows] for column in columns]
    natural = [max(len(column.header), *map(len, texts)) for column, texts in zip(columns, cells, strict=True)]
    header_words = [max(map(len, column.header.split())) for column in columns]
    tokens = [max((len(word) for text in texts for word in text.split()), default=1) for texts in cells]
    unwrapped = [max(header, *map(len, texts)) for header, texts in zip(header_words, cells, strict=True)]
    narrowest = [max(h, t) for h, t in zip(header_words, tokens, strict=True)]
    verdict_floor = [min(n, max(VERDICT_MIN, h)) for n, h in zip(natural, header_words, strict=True)]
    name_floor = [min(n, max(RECIPE_MIN, h)) for n, h in zip(natural, header_words, strict=True)]
    widths = list(natural)
    numeric = [i for i, column in enumerate(columns) if column.numeric]
    verdicts = [i for i, column in enumerate(columns) if column.name == "verdict"]
    names = [i for i, column in enumerate(columns) if not column.numeric and column.name != "verdict"]
    stages = ((verdicts, verdict_floor), (numeric, unwrapped), (numeric, narrowest), (names, name_floor))
    excess = sum(widths) - room
    for indices, floors in stages:
        for i in indices:
            if excess <= 0:
                return widths
            cut = min(max(0, widths[i] - floors[i]), excess)
            widths[i] -= cut
            excess -= cut
    return widths if excess <= 0 else None


Clock = Callable[[], float]
BAR_COLUMNS_WIDTH = 62
"""What the bar's columns other than the description take: spinner, a 20-wide bar, N/M, elapsed and left
with their times, and the gaps between them."""


class PackProgress:
    """`pack`'s progress callback. On a terminal: one bar over the recipes with elapsed time and ETA,
    and a line per finished recipe. Elsewhere (CI logs, pipes): one timestamped line per stage and per
    finished recipe, with its time and the time left, no control characters."""

    def __init__(self, console: Console, clock: Clock = time.monotonic, wall: Clock = time.time) -> None:
        self.console = console
        self.clock, self.wall = clock, wall
        self.started = clock()
        self.current: RecipeStep | None = None
        self.step_started = 0.0
        self.done: list[float] = []
        self.bar: Progress | None = None
        self.task: TaskID | None = None

    def __enter__(self) -> PackProgress:
        if self.console.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(bar_width=20),
                MofNCompleteColumn(),
                TextColumn("elapsed"),
                TimeElapsedColumn(),
                TextColumn("left"),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task("packing", total=None)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if kind is None:
            self._finish_step()
        if self.bar is not None:
            self.bar.stop()

    def __call__(self, message: str) -> None:
        self._finish_step()
        if isinstance(message, RecipeStep):
            self.current, self.step_started = message, self.clock()
            if self.bar is not None and self.task is not None:
                self.bar.update(
                    self.task, description=self._fit(message.recipe), total=message.total, completed=message.number - 1
                )
            else:
                self._line(f"{message}{self._eta(message.number - 1, message.total)}")
        elif self.bar is not None and self.task is not None:
            self.bar.update(self.task, description=self._fit(message))
        else:
            self._line(message)

    def _finish_step(self) -> None:
        step = self.current
        if step is None:
            return
        took = self.clock() - self.step_started
        self.done.append(took)
        self.current = None
        text = f"[{step.number}/{step.total}] {step.recipe} measured in {took:.1f} s"
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, completed=step.number)
            self.bar.console.print(text, highlight=False, markup=False)
        else:
            self._line(text + self._eta(step.number, step.total))

    def _fit(self, text: str) -> str:
        """The bar's description cut at a word to what the other columns leave (rich would squeeze them into
        ellipses); the whole message is in the line printed when the step ends."""
        room = max(12, self.console.width - BAR_COLUMNS_WIDTH)
        if len(text) <= room:
            return text
        cut = text[:room].rsplit(" ", 1)[0]
        return cut if len(cut) >= room // 2 else text[:room]

    def _eta(self, finished: int, total: int) -> str:
        if not self.done or finished >= total:
            return ""
        left = (total - finished) * sum(self.done) / len(self.done)
        return f" (about {left:.0f} s left)" if left >= 1 else " (under a second left)"

    def _line(self, text: str) -> None:
        stamp = time.strftime(PROGRESS_STAMP, time.localtime(self.wall()))
        self.console.print(f"{stamp} {text}", highlight=False, markup=False, soft_wrap=True)
