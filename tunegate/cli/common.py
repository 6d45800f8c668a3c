"""Shared CLI pieces: consoles, the --db option, progress bars."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

HELP_WIDTH_PIPED = 160
"""`--help` in a pipe or a CI log: wide enough that no option name is cut (rich shortens the
option columns with … when a help panel is narrower than they are)."""


class _Console(Console):
    """A rich console that, in a CI log or a pipe, never wraps or cuts at an assumed width: lines
    are soft-wrapped (never broken) and a table is printed at its natural width, whoever made it."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        tables = [o for o in objects if isinstance(o, Table)]
        if self.is_terminal or not tables:
            super().print(*objects, **kwargs)
            return
        wide = self.options.update(max_width=100_000)
        natural = max(Measurement.get(self, wide, t).maximum for t in tables)
        before = self.width
        self.width = max(before, natural)
        try:
            super().print(*objects, **{**kwargs, "crop": False})
        finally:
            self.width = before


console = _Console()
console_err = _Console(stderr=True)
console.soft_wrap = not console.is_terminal
console_err.soft_wrap = not console_err.is_terminal


def _help_width_in_a_pipe() -> None:
    """Typer draws `--help` with its own rich console, 80 columns wide when stdout is no terminal
    (a pipe, CI): widen it there so option names are never cut. TERMINAL_WIDTH still wins."""
    if sys.stdout.isatty() or os.environ.get("TERMINAL_WIDTH"):
        return
    import typer.rich_utils

    try:
        columns = int(os.environ.get("COLUMNS") or 0)
    except ValueError:
        columns = 0
    typer.rich_utils.MAX_WIDTH = max(columns, HELP_WIDTH_PIPED)


_help_width_in_a_pipe()

DbOption = Annotated[
    Path, typer.Option("--db", help="DuckDB store file.", envvar="TUNEGATE_DB", show_default=True)
]


AllowMismatchOption = Annotated[
    list[str],
    typer.Option(
        "--allow-mismatch",
        help="Compare runs measured differently on purpose, for this field (repeatable): data, prompt, "
        "generation, metric, judge, scoring, tokenizer, window, fewshot, lm_eval. Every output shows it.",
    ),
]
DEFAULT_DB = Path("tunegate.duckdb")


@contextmanager
def progress_bars(enabled: bool = True) -> Iterator[Callable[[str, int], Callable[[int], None]]]:
    """Yields `start(description, total) -> advance(n)`: a rich bar with ETA per suite on a
    terminal, one plain line per stored batch otherwise (CI logs, pipes)."""
    if enabled and not console_err.is_terminal:
        yield _line_progress
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console_err,
        disable=not enabled,
        transient=False,
    ) as prog:

        def start(desc: str, total: int) -> Callable[[int], None]:
            task = prog.add_task(desc, total=total)
            return lambda n: prog.advance(task, n)

        yield start


def fmt(x: float, digits: int = 4) -> str:
    if x != x:  # nan
        return "–"
    return f"{x:.{digits}g}" if abs(x) >= 1e4 or (x != 0 and abs(x) < 1e-3) else f"{x:.{digits}f}"


def _line_progress(desc: str, total: int) -> Callable[[int], None]:
    import time

    t0, done = time.monotonic(), 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        elapsed = time.monotonic() - t0
        eta = elapsed / done * (total - done) if done else float("nan")
        console_err.print(
            f"{desc}: {done}/{total} stored ({elapsed:.0f}s elapsed, eta {eta:.0f}s)",
            highlight=False,
        )

    return advance
