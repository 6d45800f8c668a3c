"""`tunegate load`: put a served model under load with a suite's own prompts; store and print
latency, throughput and errors per level."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from harness.errors import UserError
from tunegate.cli.common import DEFAULT_DB, DbOption, console_err

LATE_S = 0.1
"""Open loop: a request that leaves this much after its scheduled arrival means the client fell behind."""


def load_cmd(
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="The deployment: openai:MODEL@URL.")
    ] = None,
    suite: Annotated[
        list[str] | None,
        typer.Option("--suite", "-s", help="Suite whose prompts are replayed (repeatable)."),
    ] = None,
    concurrency: Annotated[
        str | None,
        typer.Option(help="Closed loop: N requests in flight; N,N,… for a sweep (default 1)."),
    ] = None,
    rate: Annotated[
        str | None,
        typer.Option(help="Open loop: Poisson arrivals at R requests/s; R,R,… for a sweep."),
    ] = None,
    duration: Annotated[
        float | None, typer.Option(help="Seconds each level sends requests (then waits for them).")
    ] = None,
    requests: Annotated[
        int | None, typer.Option(help="Requests per level (default 100; not with --duration).")
    ] = None,
    warmup: Annotated[int, typer.Option(help="Requests sent before the first level, not stored.")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the open loop's arrival times.")] = 1234,
    limit: Annotated[
        int | None, typer.Option(help="Only the first N examples of each suite are replayed.", min=1)
    ] = None,
    resume: Annotated[
        str | None,
        typer.Option(help="Continue a load run: completed levels are kept, an unfinished one is redone."),
    ] = None,
    list_runs: Annotated[bool, typer.Option("--list", help="List stored load runs and exit.")] = False,
    db: DbOption = DEFAULT_DB,
    json: Annotated[bool, typer.Option("--json", help="Print the levels as JSON.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a line per stored batch on stderr.")] = True,
) -> None:
    """Replay SUITE(s)' prompts against a served MODEL at each load level; store every request
    (TTFT, inter-token gaps, end-to-end latency, tokens, errors) and per level p50/p90/p95/p99,
    requests/s, output tokens/s and the error rate. Levels: --concurrency N[,N…] (closed loop) or
    --rate R[,R…] (open loop, Poisson arrivals)."""
    from harness.store import Store

    if list_runs:
        with Store(db, must_exist=True) as store:
            _print_list(store, json)
        return
    from harness.load.plan import LoadOptions, parse_options

    if resume:
        if any(v is not None for v in (concurrency, rate, duration, requests, limit)):
            raise UserError("--resume continues a load run with its own levels: give no level options")
        with Store(db, must_exist=True) as store:
            from harness.store.load import get_load_run

            run = get_load_run(store, resume)
        options = LoadOptions.from_record(run.config)
        model = model or run.config.get("model_spec")
        suite = suite or run.config.get("suite_paths")
    else:
        options = parse_options(concurrency, rate, duration, requests, warmup, seed, limit)
    if not model or not suite:
        raise UserError("give --model openai:MODEL@URL and at least one --suite (or --resume LOAD_RUN_ID)")
    from harness.models import parse_model_spec

    if parse_model_spec(model).kind != "openai":
        raise UserError(
            f"tunegate load measures a served deployment: give --model openai:MODEL@URL, not '{model}'",
            field="model",
        )
    from harness.load.run import LoadTarget, ready, run_load
    from harness.models import resolve_model
    from harness.models.backend import open_backend
    from suites import load_suite

    loaded = [load_suite(s) for s in suite]  # bad suite files fail before the endpoint is asked
    backend = open_backend(resolve_model(model))  # an endpoint that is down fails here
    target = LoadTarget(backend, loaded)
    usage = ready(target)  # one streamed request; nothing is stored before it answers

    behind: list[str] = []

    def on_level(i: int, level: Any, row: dict[str, Any]) -> None:
        lag = (row["summary"] or {}).get("max_send_lag_s")
        if lag is not None and lag > max(LATE_S, 2.0 / level.value):
            behind.append(f"{level.label}: a request left {lag:.3g} s after its scheduled arrival")
        if not json:
            console_err.print(
                f"level {i + 1}/{len(options.levels)} ({level.label}): {row['n_requests']} requests, "
                f"{row['n_errors']} errors, {row['requests_per_s']:.3g} req/s",
                highlight=False,
            )

    on_batch = None
    if progress and not json:
        done = [0]

        def on_batch(n: int) -> None:
            done[0] += n
            console_err.print(f"  {done[0]} requests stored", highlight=False, style="dim")

    with Store(db, must_exist=bool(resume)) as store:
        load_run_id = run_load(store, target, options, resume=resume, usage=usage, on_level=on_level,
                               on_batch=on_batch)  # fmt: skip
        print_load_run(store, load_run_id, json)
    for line in behind:
        console_err.print(
            f"[yellow]warning[/]: the client fell behind its schedule at {line}: this machine could not "
            "send at that rate, so that level measures the client as much as the server",
            highlight=False,
        )


def load_record(store: Any, load_run_id: str) -> dict[str, Any]:
    """`tunegate load --json`: the run and its levels with every number."""
    from harness.store.load import get_load_run, levels

    run = get_load_run(store, load_run_id)
    return {
        "load_run_id": run.load_run_id,
        "model_id": run.model_id,
        "model": run.model_spec,
        "suites": run.suites,
        "status": run.shown_status,
        "host": run.host,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "config": {
            k: run.config.get(k) for k in ("duration_s", "requests", "warmup", "seed", "stream_usage")
        },
        "levels": levels(store, load_run_id),
    }


def print_load_run(store: Any, load_run_id: str, as_json: bool) -> None:
    from tunegate.cli.output import Cell, Col, num, print_json, print_table, say

    rec = load_record(store, load_run_id)
    if as_json:
        print_json(rec)
        return
    names = ", ".join(s["name"] for s in rec["suites"])
    say(f"{rec['load_run_id']}  {rec['model']}  on {names}  ({rec['status']})")
    cols = [
        Col("level"), Col("requests", "right"), Col("errors", "right"), Col("error rate", "right"),
        Col("req/s", "right"), Col("out tok/s", "right"),
        Col("e2e p50", "right"), Col("p90", "right", drop=2), Col("p95", "right"), Col("p99", "right"),
        Col("ttft p50", "right", drop=1), Col("ttft p95", "right"),
    ]  # fmt: skip
    rows: list[list[Cell]] = []
    for lv in rec["levels"]:
        label = f"c={lv['value']:g}" if lv["mode"] == "concurrency" else f"{lv['value']:g}/s"
        if lv["status"] != "completed":
            label += f" ({lv['status']})"
        rows.append([
            label, str(lv["n_requests"] or 0), str(lv["n_errors"] or 0),
            f"{(lv['error_rate'] or 0):.1%}", num(lv["requests_per_s"]), num(lv["output_tokens_per_s"]),
            num(lv["e2e_p50"]), num(lv["e2e_p90"]), num(lv["e2e_p95"]), num(lv["e2e_p99"]),
            num(lv["ttft_p50"]), num(lv["ttft_p95"]),
        ])  # fmt: skip
    print_table(cols, rows)
    say("latencies in seconds over successful requests; errors are counted, never timed as 0", "dim")


def _print_list(store: Any, as_json: bool) -> None:
    from harness.store.load import levels, list_load_runs
    from tunegate.cli.output import Cell, Col, print_json, print_table

    runs = list_load_runs(store)
    if as_json:
        print_json([load_record(store, r.load_run_id) for r in runs])
        return
    rows: list[list[Cell]] = []
    for r in runs:
        lv = levels(store, r.load_run_id)
        shown = ", ".join(
            f"c={x['value']:g}" if x["mode"] == "concurrency" else f"{x['value']:g}/s" for x in lv
        )
        names = ", ".join(s["name"] for s in r.suites)
        rows.append([r.load_run_id, r.shown_status, r.model_spec, names, shown, str(r.started_at)[:19]])
    print_table(
        [Col("load run"), Col("status"), Col("model", shrink=2), Col("suites", shrink=1), Col("levels"),
         Col("started", drop=1)],
        rows,
    )  # fmt: skip
