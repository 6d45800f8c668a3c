"""`tunegate runs | show | compare`: read the store, never a model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from harness.cli.common import DEFAULT_DB, DbOption, console, fmt
from harness.models.spec import label_spec


def runs_cmd(
    db: DbOption = DEFAULT_DB, limit: Annotated[int, typer.Option(help="Newest N runs.")] = 50
) -> None:
    """List stored runs, newest first."""
    from harness.store import Store

    with Store(db, must_exist=True) as store:
        rows = store.list_runs(limit)
    t = Table("run", "status", "model", "suite", "started", "done", "errors")
    for r in rows:
        colour = {"completed": "green", "running": "yellow", "interrupted": "yellow"}.get(
            r["shown_status"], "red"
        )
        t.add_row(
            r["run_id"],
            f"[{colour}]{r['shown_status']}[/]",
            escape(label_spec(r["model"])),
            r["suite"],
            str(r["started_at"])[:19],
            f"{r['done']}/{r['n_examples']}",
            str(r["errors"]),
        )
    console.print(t)


def show_cmd(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Metrics of one run: n, value, 95% bootstrap CI, errors."""
    from harness.results import summarize_run
    from harness.store import Store
    from harness.store.contamination import summary_line

    with Store(db, must_exist=True) as store:
        run, metrics = summarize_run(store, run_id)
        done, errors = store.counts(run.run_id)
        contamination = summary_line(store, run.suite_id, run.suite_name)
    console.print(
        f"[bold]{run.run_id}[/]  model {escape(label_spec(run.model_spec))}  suite {run.suite_name} "
        f"({run.suite_kind})  status {run.shown_status}  {done}/{run.n_examples} examples, {errors} errors",
        highlight=False,
    )
    t = Table("metric", "n", "value", "95% CI", "stderr", "errors", "better")
    for m in metrics:
        s = m.summary
        t.add_row(
            m.metric,
            str(s.n),
            fmt(s.value),
            f"[{fmt(s.ci_low)}, {fmt(s.ci_high)}]",
            fmt(s.stderr),
            str(m.n_errors),
            "↑" if m.higher_is_better else "↓",
        )
    console.print(t)
    for m in metrics:
        if m.signature:  # the corpus number is only reproducible with its sacreBLEU signature
            console.print(f"  {m.metric}: sacreBLEU {m.signature}", highlight=False, markup=False)
    if contamination:
        console.print(contamination, highlight=False, markup=False)


def compare_cmd(
    baseline: Annotated[str, typer.Argument(help="Baseline run id.")],
    candidate: Annotated[
        list[str],
        typer.Argument(help="Candidate run id; several run ids or models: a leaderboard against BASELINE."),
    ],
    db: DbOption = DEFAULT_DB,
    top: Annotated[int, typer.Option(help="Most-regressed examples to list per metric.")] = 5,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write the HTML report of the two runs here.")
    ] = None,
    test: Annotated[
        str,
        typer.Option(
            help="Paired test: auto (McNemar 0/1, sacreBLEU paired_bs corpus, else Wilcoxon), mcnemar, "
            "mcnemar_midp, wilcoxon, wilcoxon_pratt, t, permutation, paired_bs, paired_ar."
        ),
    ] = "auto",
    ci: Annotated[str, typer.Option(help="Interval of the delta: auto, bootstrap, bca, t.")] = "auto",
) -> None:
    """Paired comparison of CANDIDATE against BASELINE on the examples both scored."""
    from harness.results import compare_runs
    from harness.store import Store
    from harness.store.contamination import summary_line

    if len(candidate) > 1:
        _compare_many(baseline, candidate, db, html)
        return
    with Store(db, must_exist=True) as store:
        ra, rb, comps = compare_runs(store, baseline, candidate[0], k=top, test=test, ci=ci)
        contamination = summary_line(store, ra.suite_id, ra.suite_name)
        if html:
            from reports import write_report

            path = write_report(store, [ra.run_id, rb.run_id], html)
    print_comparison(ra, rb, comps, top)
    if contamination:
        console.print(contamination, highlight=False, markup=False)
    if html:
        from harness.cli.report import announce

        announce(path)


def _compare_many(baseline: str, candidates: list[str], db: Path, html: Path | None) -> None:
    """One baseline, N candidates (run ids or models): the leaderboard of paired deltas."""
    from harness.cli.leaderboard import expand_best, print_leaderboard
    from harness.gate.leaderboard import group_candidates
    from harness.store import Store

    with Store(db, must_exist=True) as store:
        groups = group_candidates(store, expand_best(store, candidates))
        print_leaderboard(store, [baseline], groups)
        if html:
            from reports.leaderboard import write_leaderboard

            path = write_leaderboard(store, [baseline], groups, html)
    if html:
        from harness.cli.report import announce

        announce(path)


def print_comparison(ra, rb, comps, top: int = 5) -> None:
    console.print(
        f"[bold]{ra.suite_name}[/]: baseline {ra.run_id} ({escape(label_spec(ra.model_spec))}) vs "
        f"candidate {rb.run_id} ({escape(label_spec(rb.model_spec))})"
    )
    t = Table(
        "metric",
        "n",
        "baseline",
        "candidate",
        "delta",
        "95% CI (paired)",
        "p (same delta)",
        "wins/losses/ties",
        "verdict",
    )
    for c in comps:
        p = c.paired
        verdict = (
            "[dim]no significant change[/]"
            if p.improved is None
            else "[green]better[/]"
            if p.improved
            else "[red]worse[/]"
        )
        t.add_row(
            c.metric,
            str(p.n),
            fmt(p.baseline),
            fmt(p.candidate),
            f"{p.delta:+.4f}",
            f"[{fmt(p.ci_low)}, {fmt(p.ci_high)}]"
            + ("" if p.ci_method == "bootstrap" else f" {p.ci_method}"),
            f"{p.test} {fmt(p.p_value, 3)}",
            f"{p.wins}/{p.losses}/{p.ties}",
            verdict,
        )
    console.print(t)
    for line in verdict_notes(comps):
        console.print(f"  {line}", highlight=False, markup=False)
    for c in comps:
        if c.signature:
            console.print(f"  {c.metric}: sacreBLEU {c.signature}", highlight=False, markup=False)
        if c.only_in != (0, 0):
            console.print(
                f"  {c.metric}: {c.only_in[0]} examples only in baseline, "
                f"{c.only_in[1]} only in candidate (not paired)"
            )
        if not c.regressed or top <= 0:
            continue
        console.print(f"  [bold]{c.metric}[/]: most regressed")
        for r in c.regressed:
            console.print(
                f"    {r['example_id']}: {fmt(r['baseline'])} → {fmt(r['candidate'])}"
                f"  ref={_short(r['reference'])}  base={_short(r['baseline_output'])}"
                f"  cand={_short(r['candidate_output'])}",
                highlight=False,
                markup=False,
            )


def verdict_notes(comps) -> list[str]:
    """Which number decides the verdict, what each p-value tests, and where the two disagree."""
    from harness.stats import QUANTITY

    notes = ["verdict: better/worse when the 95% CI of the delta excludes 0; p tests the same delta:"]
    for test in dict.fromkeys(c.paired.test for c in comps if c.paired.n):
        notes.append(f"  {test}: {QUANTITY.get(test, test)}")
    for c in comps:
        p = c.paired
        if p.n and (p.improved is None) == (p.p_value < 0.05):
            notes.append(
                f"{c.metric}: the CI and p={p.p_value:.3g} disagree at the 5% edge"
                + (" (the test is about another quantity)" if p.test.startswith("wilcoxon") else "")
                + "; the verdict follows the CI"
            )
    return notes


def _short(v, n: int = 40) -> str:
    if isinstance(v, list):
        v = v[0] if len(v) == 1 else v
    s = repr(v) if v is not None else "–"
    return s if len(s) <= n else s[: n - 1] + "…"
