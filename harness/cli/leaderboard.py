"""Printing one baseline against N candidates (`compare`/`gate` with several candidates)."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from harness.cli.common import console, fmt


def expand_best(store: Any, refs: list[str]) -> list[str]:
    """`best:SUITE/METRIC` refs replaced by the model id of the best sweep checkpoint."""
    from harness.gate.best import PREFIX, best_candidate

    out = []
    for ref in refs:
        if ref.startswith(PREFIX):
            b = best_candidate(store, ref)
            console.print(
                f"{ref} → step {b.step} of sweep {b.sweep_id} ({b.model_id}, {b.metric} {fmt(b.value)})",
                highlight=False,
            )
            ref = b.model_id
        out.append(ref)
    return out


def print_leaderboard(
    store: Any, baseline: list[str], candidates: list[Any], verdicts: list[Any] | None = None
) -> None:
    """Suites × metrics rows, a column per candidate: value, paired delta [95% CI], coloured."""
    from harness.gate.leaderboard import leaderboard

    _, _, rows = leaderboard(store, baseline, candidates)
    t = Table("suite", "metric", "baseline", *[escape(c.label) for c in candidates], title="leaderboard")
    for r in rows:
        cells = []
        for c in r.cells:
            if c is None:
                cells.append("–")
                continue
            colours: dict[bool | None, str] = {True: "green", False: "red"}
            colour = colours.get(c.improved, "dim")
            cells.append(f"{fmt(c.value)} [{colour}]{c.delta:+.4f}[/] [{fmt(c.ci_low)}, {fmt(c.ci_high)}]")
        t.add_row(r.suite, r.metric + (" ↑" if r.higher_is_better else " ↓"), fmt(r.baseline), *cells)
    if verdicts is not None:
        t.add_row(
            "gate",
            "",
            "",
            *["[bold green]PASS[/]" if g.passed else "[bold red]FAIL[/]" for _, g in verdicts],
        )
    console.print(t)
