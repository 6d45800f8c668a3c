"""`tunegate score`: score outputs generated elsewhere (vLLM, an API, LLaMA-Factory) on suites.

A thin alias of `tunegate run --model predictions:FILE`: the file is stored, compared and
gated like any model's run, identified by its content hash.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tunegate.cli.common import DEFAULT_DB, DbOption, console


def score_cmd(
    predictions: Annotated[
        Path,
        typer.Option(
            "--predictions",
            "-p",
            help="JSONL of outputs: {id, output|prediction|predict} or LLaMA-Factory's "
            "generated_predictions.jsonl {prompt, predict, label}.",
        ),
    ],
    suite: Annotated[
        list[str], typer.Option("--suite", "-s", help="Suite file or built-in name (repeatable).")
    ],
    match: Annotated[
        str | None,
        typer.Option(help="id or order (default: by id when records have one, else by order)."),
    ] = None,
    require_ids: Annotated[
        bool,
        typer.Option(
            "--require-ids",
            help="Refuse a file whose records have no id (instead of matching them by position).",
        ),
    ] = False,
    db: DbOption = DEFAULT_DB,
    limit: Annotated[int | None, typer.Option(help="Only the first N examples of each suite.", min=1)] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Score PREDICTIONS on SUITE(s) and store them as a run of model `predictions:FILE`."""
    import suites  # noqa: F401  (registers the suite kinds and the loader harness.evaluate uses)
    from harness.errors import UserError
    from harness.evaluate import evaluate
    from harness.runner import RunOptions
    from tunegate.cli.candidates import print_see
    from tunegate.cli.common import progress_bars

    if require_ids and match not in (None, "id"):
        raise UserError(f"--require-ids matches by id: it cannot be combined with --match {match}")
    match = "id" if require_ids else match
    spec = f"predictions:{predictions}" + (f"?match={match}" if match else "")
    results = evaluate(spec, suite, db, RunOptions(limit=limit), progress=lambda: progress_bars(progress))
    for o in results[0].runs:
        console.print(
            f"[bold]{o.run_id}[/]  {o.suite}: {o.n_examples} examples scored "
            f"({o.n_errors} without a prediction)"
        )
    print_see(results, db)
