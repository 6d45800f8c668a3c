"""`tunegate runs | show | compare`: read the store, never a model."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from harness.measurement import parse_allow
from tunegate.cli.common import DEFAULT_DB, AllowMismatchOption, DbOption, console

if TYPE_CHECKING:
    from collections.abc import Sequence

    from harness.results import MetricComparison
    from harness.store import RunRecord

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON (every value in full) instead of a table.")
]


def runs_cmd(
    db: DbOption = DEFAULT_DB,
    limit: Annotated[int, typer.Option(help="Newest N runs.")] = 50,
    json: JsonOption = False,
) -> None:
    """List stored runs, newest first."""
    from harness.store import Store
    from tunegate.api import runs_records
    from tunegate.cli.output import print_json
    from tunegate.cli.views import print_runs

    with Store(db, must_exist=True) as store:
        rows = runs_records(store, limit)
    if json:
        print_json(rows)
    else:
        print_runs(rows)


def show_cmd(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    db: DbOption = DEFAULT_DB,
    json: JsonOption = False,
) -> None:
    """Metrics of one run: n, value, 95% bootstrap CI, errors."""
    from harness.store import Store
    from harness.store.contamination import summary_line
    from harness.store.judge_health import get_health, health_line
    from tunegate.api import show_record
    from tunegate.cli.output import print_json
    from tunegate.cli.views import print_show

    with Store(db, must_exist=True) as store:
        rec = show_record(store, run_id)
        contamination = summary_line(store, rec["run"]["suite_id"], rec["run"]["suite"])
        health = get_health(store, rec["run"]["run_id"])
        from harness.store.load import quality_latency

        latency = quality_latency(store, rec["run"]["run_id"])  # issue #26: said for what it is
    if json:
        rec = {**rec, "latency": latency}
        print_json({**rec, "judge_health": health} if health else rec)
        return
    print_show(rec)
    if contamination:
        console.print(contamination, highlight=False, markup=False)
    if health:
        console.print(health_line(health), highlight=False, markup=False, soft_wrap=True)
    if latency:
        console.print(
            f"latency: mean {latency['mean_s']:.3g} s, p95 {latency['p95_s']:.3g} s over {latency['n']} "
            f"generations — {latency['what']}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


def compare_cmd(
    baseline: Annotated[str, typer.Argument(help="Baseline run id or model (id or spec, as for gate).")],
    candidate: Annotated[
        list[str],
        typer.Argument(
            help="Candidate run id or model; several run ids or models: a leaderboard against BASELINE."
        ),
    ],
    db: DbOption = DEFAULT_DB,
    suite: Annotated[
        str | None, typer.Option("--suite", help="The suite to compare when two models share several.")
    ] = None,
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
    allow_mismatch: AllowMismatchOption = [],  # noqa: B006 (typer reads the default; never mutated)
    json: JsonOption = False,
) -> None:
    """Paired comparison of CANDIDATE against BASELINE on the examples both scored.

    The two runs must have been measured the same way (suite data and prompt, generation
    parameters, metric versions, judge, scoring convention, tokenizer, window, few-shot): a pair
    that differs is refused (exit 2) unless the field is allowed with --allow-mismatch."""
    from harness.store import Store
    from harness.store.contamination import summary_line
    from tunegate.api import compare_record
    from tunegate.cli.output import print_json
    from tunegate.cli.views import print_comparison as show_comparison

    if len(candidate) > 1:
        _compare_many(baseline, candidate, db, html)
        return
    allow = parse_allow(allow_mismatch)
    with Store(db, must_exist=True) as store:
        rec = compare_record(
            store, baseline, candidate[0], top=top, test=test, ci=ci, allow=allow, suite=suite
        )
        contamination = summary_line(store, rec["baseline"]["suite_id"], rec["suite"])
        if html:
            from reports import write_report

            path = write_report(
                store, [rec["baseline"]["run_id"], rec["candidate"]["run_id"]], html, allow=allow
            )
    if json:
        print_json(rec)
        return
    show_comparison(rec, top)
    if contamination:
        console.print(contamination, highlight=False, markup=False)
    if html:
        from tunegate.cli.report import announce

        announce(path)


def _compare_many(baseline: str, candidates: list[str], db: Path, html: Path | None) -> None:
    """One baseline, N candidates (run ids or models): the leaderboard of paired deltas."""
    from harness.gate.leaderboard import group_candidates
    from harness.store import Store
    from tunegate.cli.leaderboard import expand_best, print_leaderboard

    with Store(db, must_exist=True) as store:
        groups = group_candidates(store, expand_best(store, candidates))
        print_leaderboard(store, [baseline], groups)
        if html:  # the full report: leaderboard, charts and every model's outputs side by side
            from reports import write_report

            path = write_report(store, [baseline, *[r for g in groups for r in g.refs]], html)
    if html:
        from tunegate.cli.report import announce

        announce(path)


def print_comparison(ra: RunRecord, rb: RunRecord, comps: Sequence[MetricComparison], top: int = 5) -> None:
    """A paired comparison already computed (train, quickstart): printed as `compare` prints it."""
    from tunegate.api import comparability_record, comparison_records, run_record
    from tunegate.cli.views import print_comparison as show_comparison

    rec = {
        "suite": ra.suite_name,
        "baseline": run_record(ra),
        "candidate": run_record(rb),
        "comparability": comparability_record(comps),
        "metrics": comparison_records(comps),
    }
    show_comparison(rec, top)


def verdict_notes(comps: Sequence[MetricComparison]) -> list[str]:
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
