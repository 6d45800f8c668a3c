"""`tunegate import lm-eval`: bring evaluation results made elsewhere into the store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tunegate.cli.common import DEFAULT_DB, DbOption, console, console_err

app = typer.Typer(help="Store results made by other tools as runs.", no_args_is_help=True)


@app.command("lm-eval")
def lm_eval_cmd(
    results_dir: Annotated[
        Path, typer.Argument(help="--output_path of `lm_eval ... --log_samples`, or one results_*.json.")
    ],
    model_name: Annotated[
        str | None, typer.Option(help="Model name to record (default: the one lm-eval recorded).")
    ] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Store lm-eval results + samples as runs: one run per results file, one row per doc."""
    from harness.lm_eval_import import find_results, import_results
    from harness.store import Store

    files = find_results(results_dir)
    made: list[str] = []
    with Store(db) as store:
        for f in files:
            r = import_results(store, f, model_name)
            if r.already:
                console.print(f"[bold]{r.run_id}[/]  already imported from {f}")
                continue
            console.print(f"[bold]{r.run_id}[/]  {r.n_examples} examples from {f}", highlight=False)
            made.append(r.run_id)
            for m in r.mismatches:
                console_err.print(f"[yellow]warning[/]: {m}", highlight=False)
    if made:
        console.print(f"see: tunegate show {made[0]} --db {db}", highlight=False, soft_wrap=True)
