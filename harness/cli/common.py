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
# In a CI log or a pipe, a line is never wrapped at an assumed width (tables: harness.cli.output).
console.soft_wrap = not console.is_terminal
console_err.soft_wrap = not console_err.is_terminal

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
