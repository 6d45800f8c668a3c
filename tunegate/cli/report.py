"""`tunegate report`: one self-contained HTML file from stored runs (no model is loaded)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.errors import UserError
from harness.measurement import parse_allow
from tunegate.cli.common import DEFAULT_DB, AllowMismatchOption, DbOption, console

HtmlOption = Annotated[
    Path | None, typer.Option("--html", help="Also write the HTML report (one self-contained file) here.")
]


def report_cmd(
    refs: Annotated[
        list[str] | None,
        typer.Argument(
            help="Run ids (or prefixes) or models (their latest completed run per suite); "
            "the first model is the base, the others candidates against it.",
            metavar="RUN_OR_MODEL",
            show_default=False,
        ),
    ] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="HTML file to write.")] = Path("report.html"),
    policy: Annotated[
        Path | None, typer.Option("--policy", help="Gate policy YAML: show its verdict per rule.")
    ] = None,
    db: DbOption = DEFAULT_DB,
    sweep: Annotated[
        list[str] | None,
        typer.Option("--sweep", help="Also draw this checkpoint sweep's metric vs step (sweep id)."),
    ] = None,
    allow_mismatch: AllowMismatchOption = [],  # noqa: B006 (typer reads the default; never mutated)
) -> None:
    """Write an HTML report: lineage, scoreboard with CIs, charts, per-example viewer.

    Runs of more than two models: the first model is the baseline and every other one a
    candidate, each in its own column (leaderboard, charts, the viewer's outputs side by side);
    --sweep adds each checkpoint's metric vs training step (alone: the sweep's own models)."""
    from harness.store import Store

    if not refs and not sweep:
        raise UserError("Missing argument 'RUN_OR_MODEL...': give run ids or models (or --sweep ID)")
    with Store(db, must_exist=True) as store:
        from harness.gate.leaderboard import group_candidates
        from tunegate.cli.leaderboard import expand_best

        refs = expand_best(store, refs) if refs else []
        if sweep and len(group_candidates(store, refs) if refs else []) < 2:
            from harness.gate.best import sweep_runs  # the sweep's own models: its first step the base

            steps: dict[tuple[int, str], str] = {}
            for s in sweep:
                for _, model_id, _, _, step, _, _ in sweep_runs(store, sweep=s):
                    steps.setdefault((step, model_id), model_id)
            refs = list(dict.fromkeys(m for _, m in sorted(steps)))
            if len(refs) < 2:
                raise UserError("a sweep report needs a baseline and at least one checkpoint")
        from reports import write_report

        path = write_report(
            store, refs, output, policy=policy, allow=parse_allow(allow_mismatch), sweeps=sweep
        )
    announce(path)


def announce(path: Path) -> None:
    size = path.stat().st_size
    console.print(f"report written to {path} ({size / 1e6:.2f} MB); open it in a browser", highlight=False)
