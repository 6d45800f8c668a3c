"""`tunegate suites ls | validate | metrics`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from tunegate.cli.common import console

EXAMPLE_IDS = (
    "Example ids: each data record's `id` (or the field the suite names in `id_field`) becomes its "
    "example id, as text: compare, gate, reports and predictions files pair examples by it. A record "
    "without one gets `line-N`, N its line in the data file (so a line added above it renumbers it); "
    "two records with one id are an error naming the file and line."
)
app = typer.Typer(help=f"List and validate suites.\n\n{EXAMPLE_IDS}", no_args_is_help=True)


@app.command("ls")
def ls_cmd() -> None:
    """List the built-in suites."""
    from suites import builtin_suites, load_suite

    t = Table("name", "kind", "examples", "description")
    for name, path in builtin_suites().items():
        s = load_suite(path)
        t.add_row(name, s.kind, str(len(s.examples)), s.config.description)
    console.print(t)


@app.command("validate")
def validate_cmd(
    files: Annotated[list[str], typer.Argument(help="Suite files or built-in names.")],
) -> None:
    """Check suite files (schema, metrics, data) without running a model."""
    from suites import load_suite

    for f in files:
        s = load_suite(f)
        console.print(
            f"[green]ok[/] {f}: {s.kind} suite '{s.config.name}', {len(s.examples)} examples, "
            f"metrics {', '.join(m.name for m in s.metrics)}"
        )


@app.command("metrics")
def metrics_cmd() -> None:
    """List the registered metrics and their options."""
    import inspect

    from suites.metrics import METRICS, PRESETS

    t = Table("metric", "options", "better", "description")
    for name in METRICS.names():
        e = METRICS.get(name)
        sig = inspect.signature(e.factory)
        opts = ", ".join(
            f"{p.name}={p.default!r}" if p.default is not p.empty else p.name for p in sig.parameters.values()
        )
        t.add_row(
            name,
            opts,
            "↑" if e.info["higher_is_better"] else "↓",
            (inspect.getdoc(e.factory) or "").split("\n")[0],
        )
    console.print(t)
    for preset, entries in PRESETS.items():
        console.print(f"preset [bold]{preset}[/]: " + ", ".join(e["as"] for e in entries))
