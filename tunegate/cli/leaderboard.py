"""Printing one baseline against N candidates (`compare`/`gate` with several candidates)."""

from __future__ import annotations

from typing import Any

from tunegate.cli.common import console, fmt


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
    """A line per suite × metric × candidate: both values, the paired delta, its 95% CI and the
    ▲/▼ verdict, as `compare` prints one pair; fitted to a terminal (100 columns hold it), whole
    in a log. Then which model each candidate is, and its gate verdict when there is one."""
    from harness.gate.leaderboard import leaderboard
    from reports.sides import model_names
    from tunegate.cli.output import (
        VERDICT_LEGEND,
        VERDICT_STYLE,
        VERDICT_SYMBOL,
        Col,
        ci,
        fit,
        num,
        print_table,
        say,
        signed,
    )

    base, sides, rows = leaderboard(store, baseline, candidates)
    firsts = [next(iter(side.values()), None) for side in sides]
    known = model_names([r for r in firsts if r is not None])
    names = [known.pop(0) if r is not None else c.label for c, r in zip(candidates, firsts)]
    table: list[list[Any]] = []
    for r in rows:
        for name, c in zip(names, r.cells):
            if c is None:
                arrow = " ↑" if r.higher_is_better else " ↓"
                table.append([r.suite, r.metric + arrow, name, num(r.baseline), "–", "–", "–", "0", ""])
                continue
            v = {True: "better", False: "worse", None: "no_change"}[c.improved]
            table.append(
                [
                    r.suite,
                    r.metric + (" ↑" if r.higher_is_better else " ↓"),
                    name,
                    num(r.baseline),
                    num(c.value),
                    signed(c.delta),
                    ci(c.ci_low, c.ci_high),
                    str(c.n),
                    (VERDICT_SYMBOL[v], VERDICT_STYLE[v]),
                ]
            )
    cols = [
        Col("suite", shrink=1),
        Col("metric", shrink=1),
        Col("candidate", shrink=2),
        Col("base", "right"),
        Col("cand", "right"),
        Col("delta", "right"),
        Col("95% CI"),
        Col("n", "right", drop=1),
        Col(""),
    ]
    spec = next(iter(base.values())).model_spec if base else ", ".join(baseline)
    print_table(cols, table, title=fit(f"leaderboard: {len(candidates)} candidates against {spec}"))
    gate = {c.model_id: g for c, g in verdicts} if verdicts is not None else {}
    for name, c, first in zip(names, candidates, firsts):
        g = gate.get(c.model_id)
        state = "" if g is None else ("  gate PASS" if g.passed else "  gate FAIL")
        say(fit(f"  {name}: {c.label}" + (f" ({first.model_spec})" if first is not None else "") + state),
            None if g is None else ("green" if g.passed else "red"))  # fmt: skip
    say(f"  {VERDICT_LEGEND}")
