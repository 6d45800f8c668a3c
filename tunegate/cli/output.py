"""Tables and lines people read: fitted to a terminal, never cut in a CI log, JSON for scripts.

On a terminal a table is fitted to its width: numbers get 4 significant digits and long text
(model specs, metric names, reasons) is shortened in the middle, never wrapped. When stdout is
not a terminal nothing is shortened and tables are printed at their natural width, whatever
COLUMNS says, so a CI log always holds every character. `--json` prints the `tunegate.api`
records instead, with every value in full.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

from tunegate.cli.common import console

ELLIPSIS = "…"
GAP = 2  # cells between two columns
VERDICT_SYMBOL = {"better": "▲", "worse": "▼", "no_change": "·"}
VERDICT_STYLE = {"better": "green", "worse": "red", "no_change": "dim"}
VERDICT_LEGEND = (
    "delta = candidate − baseline, in the metric's units (a perplexity rise is a positive delta and worse); "
    "▲ better / ▼ worse: the 95% CI of the delta excludes 0; · no significant change: the CI includes 0"
)
DELTA_LEGEND = "delta = candidate − baseline, in the metric's units, as `compare` prints it"


@dataclass(frozen=True)
class Col:
    """A table column. `shrink` > 0: its text may be shortened in the middle on a terminal
    (higher: shortened first); 0: never shortened."""

    header: str
    justify: str = "left"
    shrink: int = 0
    drop: int = 0
    """> 0: left out on a terminal too narrow for the table (highest first); never in a log."""
    min_width: int = 8
    """A shrinkable column is never shortened below this (or its header)."""


Cell = str | tuple[str, str]
"""Plain text (never read as markup), or (text, rich style)."""


def is_terminal() -> bool:
    return console.is_terminal


def num(x: float | None, digits: int = 4) -> str:
    """3–4 significant digits, without exponents for everyday magnitudes; – for nan/None."""
    if x is None or x != x:
        return "–"
    if x == 0:
        return "0"
    if 1e4 <= abs(x) < 1e9:
        return f"{x:.0f}"
    return f"{x:.{digits}g}"


def signed(x: float | None, digits: int = 4) -> str:
    s = num(x, digits)
    return s if s == "–" or s.startswith("-") or s == "0" else "+" + s


def ci(low: float | None, high: float | None) -> str:
    return f"[{num(low)}, {num(high)}]"


def shorten(text: str, width: int) -> str:
    """`text` in at most `width` cells, the middle replaced by … (both ends are what tells specs apart)."""
    if cell_len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    head, tail = width // 2, (width - 1) // 2
    left, right = _take(text, head), _take(text[::-1], tail)[::-1]
    return left + ELLIPSIS + right


def fit(text: str, width: int | None = None) -> str:
    """On a terminal, `text` shortened in the middle to the terminal's width; elsewhere as it is."""
    return shorten(text, width or console.width) if is_terminal() else text


def _take(text: str, cells: int) -> str:
    out, used = [], 0
    for ch in text:
        w = cell_len(ch)
        if used + w > cells:
            break
        out.append(ch)
        used += w
    return "".join(out)


def _text(cell: Cell) -> str:
    return cell[0] if isinstance(cell, tuple) else cell


def _widths(cols: Sequence[Col], rows: list[list[Cell]]) -> list[int]:
    return [max([cell_len(c.header)] + [cell_len(_text(r[i])) for r in rows]) for i, c in enumerate(cols)]


def _floor(c: Col) -> int:
    return max(c.min_width, cell_len(c.header))


def _fit_columns(
    cols: Sequence[Col], rows: list[list[Cell]], width: int
) -> tuple[list[Col], list[list[Cell]], list[str]]:
    """Drop droppable columns while shortening cannot make the table fit, then shorten the
    shrinkable ones, a cell at a time from the one with the most to spare (weighted by `shrink`),
    never below `min_width`. Returns what was dropped too."""
    cols, dropped = list(cols), []
    while True:
        widths = _widths(cols, rows)
        over = sum(widths) + GAP * (len(cols) - 1) - width
        room = sum(max(0, w - _floor(c)) for c, w in zip(cols, widths) if c.shrink)
        droppable = [i for i, c in enumerate(cols) if c.drop]
        if over <= room or not droppable:
            break
        i = max(droppable, key=lambda i: (cols[i].drop, i))
        dropped.append(cols[i].header)
        cols.pop(i)
        rows = [r[:i] + r[i + 1 :] for r in rows]
    shrinkable = [i for i, c in enumerate(cols) if c.shrink]
    while over > 0 and shrinkable:  # one cell at a time from the column with the most to spare
        i = max(shrinkable, key=lambda i: ((widths[i] - _floor(cols[i])) * cols[i].shrink, i))
        if widths[i] <= _floor(cols[i]):
            break
        widths[i] -= 1
        over -= 1
    out = []
    for r in rows:
        new = []
        for i, cell in enumerate(r):
            text = _text(cell)
            if cols[i].shrink and cell_len(text) > widths[i]:
                text = shorten(text, widths[i])
                cell = (text, cell[1]) if isinstance(cell, tuple) else text
            new.append(cell)
        out.append(new)
    return cols, out, dropped


def print_table(cols: Sequence[Col], rows: list[list[Cell]], *, title: str | None = None) -> None:
    """A borderless aligned table: fitted on a terminal, at full width elsewhere."""
    dropped: list[str] = []
    if is_terminal():
        cols, rows, dropped = _fit_columns(cols, rows, console.width)
    t = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1, 0, 0),  # one space and the (blank) divider between columns: GAP
        title=title,
        title_justify="left",
        title_style="bold",
    )
    for c in cols:
        t.add_column(c.header, justify=c.justify, no_wrap=True)  # type: ignore[arg-type]
    for r in rows:
        t.add_row(*(Text(c[0], style=c[1]) if isinstance(c, tuple) else Text(c) for c in r))
    if is_terminal():
        console.print(t)
        if dropped:
            say(f"({', '.join(dropped)}: left out to fit this terminal; see --json)", "dim")
        return
    from rich.measure import Measurement

    natural = Measurement.get(console, console.options.update(max_width=100_000), t).maximum
    before = console.width
    console.width = max(before, natural, cell_len(title or ""))  # a log is never cut: as wide as it needs
    try:
        console.print(t, crop=False)
    finally:
        console.width = before


def say(text: str, style: str | None = None) -> None:
    """One line of plain text (never read as markup; not wrapped in a log)."""
    console.print(Text(text, style=style or ""), highlight=False)


def print_json(obj: Any) -> None:
    """Pretty JSON on stdout, for scripts (nothing else is printed on stdout with --json)."""
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()
