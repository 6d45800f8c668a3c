"""Shared CLI pieces: consoles, the --db option, progress bars."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()
console_err = Console(stderr=True)

DbOption = Annotated[
    Path, typer.Option("--db", help="DuckDB store file.", envvar="TUNEGATE_DB", show_default=True)
]
DEFAULT_DB = Path("tunegate.duckdb")


@contextmanager
def progress_bars(enabled: bool = True) -> Iterator[Callable[[str, int], Callable[[int], None]]]:
    """Yields `start(description, total) -> advance(n)`; a rich bar with ETA per suite."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                  console=console_err, disable=not enabled, transient=False) as prog:
        def start(desc: str, total: int) -> Callable[[int], None]:
            task = prog.add_task(desc, total=total)
            return lambda n: prog.advance(task, n)

        yield start


def fmt(x: float, digits: int = 4) -> str:
    if x != x:  # nan
        return "–"
    return f"{x:.{digits}g}" if abs(x) >= 1e4 or (x != 0 and abs(x) < 1e-3) else f"{x:.{digits}f}"
