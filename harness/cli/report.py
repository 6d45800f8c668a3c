"""`tunegate report`: one self-contained HTML file from stored runs (no model is loaded)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli.common import DEFAULT_DB, DbOption, console

HtmlOption = Annotated[
    Path | None, typer.Option("--html", help="Also write the HTML report (one self-contained file) here.")
]


def report_cmd(
    refs: Annotated[
        list[str],
        typer.Argument(
            help="Run ids (or prefixes) or models (their latest completed run per suite); "
            "the first model is the base, the second the candidate.",
            metavar="RUN_OR_MODEL",
            show_default=False,
        ),
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="HTML file to write.")] = Path("report.html"),
    policy: Annotated[
        Path | None, typer.Option("--policy", help="Gate policy YAML: show its verdict per rule.")
    ] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Write an HTML report: lineage, scoreboard with CIs, charts, per-example viewer."""
    from reports import write_report

    path = write_report(db, refs, output, policy=policy)
    announce(path)


def announce(path: Path) -> None:
    size = path.stat().st_size
    console.print(f"report written to {path} ({size / 1e6:.2f} MB); open it in a browser", highlight=False)
