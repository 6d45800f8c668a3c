"""The `tunegate` command line. Heavy imports (torch, transformers, metrics) happen inside
commands, so `tunegate --help` starts instantly."""

from __future__ import annotations

import logging
import os
import sys

import typer

from harness.cli import (
    data,
    gate,
    import_cmd,
    judge_cmd,
    quickstart,
    report,
    results,
    run,
    score,
    suites_cmd,
    train,
)
from harness.cli.common import console_err
from harness.errors import UserError

app = typer.Typer(
    name="tunegate",
    help="Evaluation-first harness for LLM fine-tuning: run suites, store every output in DuckDB, "
    "compare runs with paired statistics.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"tunegate {version('tunegate')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Evaluation-first harness for LLM fine-tuning."""


app.command("run")(run.run_cmd)
app.command("runs")(results.runs_cmd)
app.command("show")(results.show_cmd)
app.command("compare")(results.compare_cmd)
app.command("gate")(gate.gate_cmd)
app.command("quickstart")(quickstart.quickstart_cmd)
app.add_typer(suites_cmd.app, name="suites")
app.add_typer(data.app, name="data")
app.add_typer(train.app, name="train")
app.command("merge")(train.merge_cmd)
app.add_typer(import_cmd.app, name="import")
app.add_typer(judge_cmd.app, name="judge")
app.command("report")(report.report_cmd)
app.command("score")(score.score_cmd)


def main() -> None:
    """Entry point: user errors print one line and exit 2; --debug shows tracebacks."""
    debug = "--debug" in sys.argv
    if debug:
        sys.argv.remove("--debug")
    # Local models only: never reach for a model hub unless the user asks for it.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        # Non-standalone typer returns exit codes (130 for Ctrl-C) instead of raising.
        rc = app(standalone_mode=False)
    except UserError as e:
        if debug:
            raise
        console_err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        rc = 130
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as e:  # click usage errors arrive here with standalone_mode=False
        import click

        try:  # typer >= 0.2x raises its vendored click's exceptions, not click's
            from typer._click import ClickException as TyperClickException
        except ImportError:
            TyperClickException = click.ClickException
        if isinstance(e, click.ClickException | TyperClickException):
            e.show()
            sys.exit(2)
        raise
    if rc == 130:
        console_err.print(
            "[yellow]interrupted[/]: finished batches are stored; continue with "
            "`tunegate run --resume RUN_ID`"
        )
    if isinstance(rc, int) and rc:
        sys.exit(rc)
