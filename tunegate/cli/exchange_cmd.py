"""`tunegate requests export` / `tunegate outputs import`: batch engines that are not tunegate
(a Slurm array of vLLM offline jobs, Ray Data LLM) answer exported requests; their outputs come
back as cache entries that `tunegate run` scores without a model call (harness.exchange)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tunegate.cli.common import DEFAULT_DB, DbOption, console

requests_app = typer.Typer(help="Requests for batch engines outside tunegate (Ray Data LLM, vLLM jobs).")
outputs_app = typer.Typer(help="Outputs made by batch engines outside tunegate, stored as cache entries.")

ModelOption = Annotated[
    str,
    typer.Option("--model", "-m", help="Model spec the requests are for (its fingerprint is in every key)."),
]


def register(app: typer.Typer) -> None:
    """Add `requests` and `outputs` to the CLI."""
    app.add_typer(requests_app, name="requests")
    app.add_typer(outputs_app, name="outputs")


@requests_app.command("export")
def export_cmd(
    suites: Annotated[list[str], typer.Argument(help="Suite files or built-in names.")],
    model: ModelOption,
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write: .parquet or .jsonl.")],
    limit: Annotated[int | None, typer.Option(help="Only the first N examples of each suite.", min=1)] = None,
    seed: Annotated[
        int, typer.Option(help="The seed `tunegate run` will use (keys of sampled requests hold it).")
    ] = 1234,
) -> None:
    """Write every generation request of SUITES exactly as `tunegate run --model` would send it,
    with its cache key: rendered prompt or chat messages, and generation parameters."""
    from harness.exchange import check_format, request_rows, write_rows
    from harness.runner.capabilities import check_capabilities
    from suites import load_suite

    check_format(out)  # a wrong suffix fails before the model loads
    loaded = [load_suite(s) for s in suites]
    backend = _open(model)
    for s in loaded:
        check_capabilities(backend, s)
    rows = request_rows(backend, loaded, seed=seed, limit=limit)
    write_rows(rows, out)
    n_chat = sum(r["messages"] is not None for r in rows)
    console.print(
        f"wrote {len(rows)} requests ({n_chat} as chat messages, {len(rows) - n_chat} as prompts) "
        f"for model {backend.resolved.model_id} to {out}",
        highlight=False,
        markup=False,
    )


@outputs_app.command("import")
def import_cmd(
    outputs: Annotated[
        list[Path],
        typer.Argument(help="Outputs files (.parquet or .jsonl: cache_key, output, …), e.g. one per shard."),
    ],
    model: ModelOption,
    requests: Annotated[
        Path | None,
        typer.Option(help="The exported requests file, when the outputs file does not carry its columns."),
    ] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Store outputs made elsewhere as generations under their cache keys; `tunegate run` with
    the same --model then scores them as cache hits (0 model calls). Every file is checked
    before anything is written; a generation already stored is kept."""
    from harness.exchange import import_outputs
    from harness.models import parse_model_spec, resolve_model
    from harness.store import Store

    resolved = resolve_model(parse_model_spec(model))
    with Store(db) as store:
        report = import_outputs(store, resolved, outputs, requests)
    console.print(
        f"stored {report.stored} generations ({report.errors} errors) for model {resolved.model_id} "
        f"in {db}; {report.kept} already stored were kept",
        highlight=False,
        markup=False,
    )


def _open(model: str) -> Any:
    """The backend `tunegate run` would use, so prompts are rendered the same way."""
    from harness.models import parse_model_spec, resolve_model
    from harness.models.backend import open_backend
    from tunegate.cli.candidates import needs_shared, open_views

    spec = parse_model_spec(model)
    if needs_shared(spec):  # an adapter or chat template option: run evaluates through a view
        return open_views(model, [], include_base=not spec.adapter, allow_noop=False)[0]
    return open_backend(resolve_model(spec))
