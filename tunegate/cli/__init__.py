"""The `tunegate` command line. Heavy imports (torch, transformers, metrics) happen inside
commands, so `tunegate --help` starts instantly."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from harness.errors import UserError
from tunegate.cli import (
    contamination_cmd,
    data,
    db_cmd,
    exchange_cmd,
    gate,
    import_cmd,
    judge_cmd,
    load_cmd,
    quickstart,
    report,
    results,
    review_cmd,
    run,
    score,
    suites_cmd,
    sweep,
    train,
)
from tunegate.cli.common import console_err

EXIT_CODES = (
    "Exit codes: 0 ok, 1 gate failed, 2 bad input (nothing stored changes), "
    "3 store locked by another process (retry with --wait SECONDS), 130 Ctrl-C, 143 SIGTERM."
)
GLOBAL_FLAGS = (
    "With any command: --debug shows tracebacks; --wait SECONDS retries a locked store that long "
    "(default $TUNEGATE_DB_WAIT, else 0)."
)

app = typer.Typer(
    name="tunegate",
    help="Evaluation-first harness for LLM fine-tuning: run suites, store every output in DuckDB, "
    f"compare runs with paired statistics.\n\n{EXIT_CODES}\n\n{GLOBAL_FLAGS}",
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
    trust_code: bool = typer.Option(
        False,
        "--trust-code",
        help="Run Python that suites bring (lm-eval `!function`, hf_evaluate modules); refused "
        "otherwise (env: TUNEGATE_TRUST_CODE=1).",
    ),
    data_root: Annotated[
        list[Path] | None,
        typer.Option(
            "--data-root",
            help="Let suites read files under DIR too (data, templates, include_path); by default a "
            "suite reads only inside its own folder (env: TUNEGATE_DATA_ROOT).",
        ),
    ] = None,
) -> None:
    """Evaluation-first harness for LLM fine-tuning."""
    if data_root:
        from harness.data_root import allow_data_root

        for d in data_root:
            allow_data_root(d)
    if trust_code:
        from harness.trust import trust_code as trust

        trust()


app.command("run")(run.run_cmd)
app.command("runs")(results.runs_cmd)
app.command("show")(results.show_cmd)
app.command("compare")(results.compare_cmd)
app.command("gate")(gate.gate_cmd)
app.command("quickstart")(quickstart.quickstart_cmd)
app.add_typer(suites_cmd.app, name="suites")
data.app.command("contamination")(contamination_cmd.contamination_cmd)
app.add_typer(data.app, name="data")
app.add_typer(train.app, name="train")
app.command("merge")(train.merge_cmd)
app.add_typer(import_cmd.app, name="import")
app.add_typer(judge_cmd.app, name="judge")
app.command("report")(report.report_cmd)
app.command("review")(review_cmd.review_cmd)
app.command("score")(score.score_cmd)
app.add_typer(db_cmd.app, name="db")
app.command("sweep")(sweep.sweep_cmd)
app.command("load")(load_cmd.load_cmd)
exchange_cmd.register(app)  # requests export, outputs import


def main() -> None:
    """Entry point: user errors print one line and exit 2 (a locked store 3); --debug shows tracebacks."""
    from rich.markup import escape

    from harness import signals
    from harness.secrets import install_log_filter, scrub

    debug = "--debug" in sys.argv
    if debug:
        sys.argv.remove("--debug")
    try:
        _take_wait_flag(sys.argv)
    except UserError as e:
        console_err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    # Local models only: never reach for a model hub unless the user asks for it.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    install_log_filter()
    if not debug:
        _quiet_libraries()
    try:
        # SIGTERM (CI cancel, `timeout`) is an interrupt like Ctrl-C; installed inside the try: a
        # signal landing the instant the handler is in place is an interrupt too (130 / 143).
        signals.install()
        # Non-standalone typer returns exit codes (130 for Ctrl-C) instead of raising.
        rc = app(standalone_mode=False)
    except UserError as e:
        if debug:
            raise
        console_err.print(f"[bold red]error:[/] {escape(scrub(str(e)))}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except ImportError as e:  # an optional package (torch, TRL, …): name the extra to install
        from harness.extras import missing_extra

        missing = missing_extra(e)
        if missing is None or debug:
            raise
        console_err.print(f"[bold red]error:[/] {escape(str(missing))}", highlight=False, soft_wrap=True)
        sys.exit(missing.exit_code)
    except KeyboardInterrupt:
        rc = 130
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as e:  # click usage errors arrive here with standalone_mode=False
        import click

        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(2)
        try:  # typer >= 0.2x raises its vendored click's exceptions, not click's
            from typer._click import ClickException as TyperClickException
        except ImportError:
            pass
        else:
            if isinstance(e, TyperClickException):
                e.show()
                sys.exit(2)
        message = _store_error(e)
        if message is None or debug:
            raise
        console_err.print(f"error: {scrub(message)}", highlight=False, soft_wrap=True, markup=False)
        sys.exit(2)
    if rc == 130:
        _say_interrupted(signals.interrupted())
        # An interrupt that landed inside an import makes CPython re-kill itself with SIGINT at
        # exit (status -2), whatever we return: leave now with the documented 130 / 143.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(signals.exit_code())
    if isinstance(rc, int) and rc:
        sys.exit(rc)


def _quiet_libraries() -> None:
    """Library chatter (bitsandbytes' "kernels" fallback, transformers' FutureWarnings) is not for
    users: shown only with --debug. tunegate's own warnings still show."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    for name in (
        "bitsandbytes",
        "transformers",
        "peft",
        "trl",
        "accelerate",
        "datasets",
        "torch",
        "lm_eval",
        "lm-eval",
    ):
        logging.getLogger(name).setLevel(logging.ERROR)


def _take_wait_flag(argv: list[str]) -> None:
    """`--wait SECONDS` anywhere on the line (like --debug): how long to retry a locked store."""
    from harness.store import Store

    value = os.environ.get("TUNEGATE_DB_WAIT")
    where = "$TUNEGATE_DB_WAIT"
    for i, arg in enumerate(argv[1:], start=1):
        if arg == "--wait" or arg.startswith("--wait="):
            value = arg.split("=", 1)[1] if "=" in arg else (argv[i + 1] if i + 1 < len(argv) else "")
            del argv[i : i + (1 if "=" in arg else 2)]
            where = "--wait"
            break
    if value is None:
        return
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise UserError(f"{where} takes a number of seconds >= 0, got '{value}'")
    Store.default_wait = seconds


def _say_interrupted(runs: list[tuple[str, str, str]]) -> None:
    """How to continue — naming the run, and only when a run was really stored."""
    from tunegate.cli.common import DEFAULT_DB

    if not runs:
        console_err.print("[yellow]interrupted[/] before any run was stored: nothing to resume")
    for kind, ref, db in runs:
        on_db = "" if db == str(DEFAULT_DB) else f" --db {db}"
        if kind == "load":
            console_err.print(
                f"[yellow]interrupted[/]: load run {ref} keeps its completed levels; continue with "
                f"`tunegate load --resume {ref}{on_db}`",
                highlight=False,
            )
        elif kind == "run":
            console_err.print(
                f"[yellow]interrupted[/]: run {ref} keeps its finished batches; continue with "
                f"`tunegate run --resume {ref}{on_db}`",
                highlight=False,
            )
        else:
            console_err.print(
                f"[yellow]interrupted[/]: training run {ref} is marked interrupted; "
                "run the same `tunegate train` command to train again",
                highlight=False,
            )


def _store_error(e: Exception) -> str | None:
    """A DuckDB failure that is about the store file, as one sentence (else None: a bug)."""
    duckdb = sys.modules.get("duckdb")
    if duckdb is None or not isinstance(e, duckdb.Error):
        return None
    if "read-only" in str(e):
        return "this store was written by a newer tunegate and is open read-only: upgrade tunegate to write"
    if isinstance(e, duckdb.IOException | duckdb.SerializationException | duckdb.InternalException):
        return f"store is damaged ({e}): restore it from a copy or pass another --db"
    return None
