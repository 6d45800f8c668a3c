"""`tunegate judge`: how far to trust a judge (agreement with human labels)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tunegate.cli.common import DEFAULT_DB, DbOption, console, fmt

app = typer.Typer(help="LLM-as-judge tools.", no_args_is_help=True)


@app.command("agreement")
def agreement_cmd(
    labels: Annotated[
        Path, typer.Option("--labels", help="JSONL or CSV of human scores: one example id and label per row.")
    ],
    run: Annotated[str, typer.Option("--run", "-r", help="Run id (or prefix) of a judge suite run.")],
    metric: Annotated[str, typer.Option(help="Judge metric to compare with the labels.")] = "total",
    id_field: Annotated[str, typer.Option(help="Field with the example id.")] = "id",
    label_field: Annotated[str, typer.Option(help="Field with the human score.")] = "label",
    db: DbOption = DEFAULT_DB,
) -> None:
    """Cohen's kappa (quadratic weights) and Spearman between a judge's scores and human labels; stored."""
    from rich.table import Table

    from harness.store import Store
    from judges.agreement import agreement, judge_scores, read_labels, store_agreement
    from judges.health import update_kappa

    human = read_labels(labels, id_field, label_field)
    with Store(db, must_exist=True) as store:
        run_id = store.get_run(run).run_id
        result = agreement(judge_scores(store, run_id, metric), human)
        agreement_id = store_agreement(store, run_id, metric, labels, result)
        update_kappa(store, run_id)  # the judge health row that judge_min_kappa reads (#15)
    t = Table("run", "metric", "n", "kappa (quadratic)", "spearman", "p", "judge mean", "human mean")
    t.add_row(
        run_id,
        metric,
        str(result.n),
        fmt(result.kappa_quadratic),
        fmt(result.spearman),
        fmt(result.spearman_p),
        fmt(result.judge_mean),
        fmt(result.human_mean),
    )
    console.print(t)
    if result.unmatched_labels:
        console.print(
            f"{result.unmatched_labels} labelled examples have no judge score (errors or not in the run)"
        )
    console.print(f"stored as {agreement_id} in {db} (table judge_agreements)")
