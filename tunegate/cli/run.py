"""`tunegate run`: evaluate a model on suites, storing every output and score."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.errors import UserError
from tunegate.cli.common import DEFAULT_DB, DbOption, console, progress_bars


def run_cmd(
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Model spec: smollm2, hf:DIR, gguf:FILE, llamacpp:FILE.gguf, openai:MODEL@URL, "
            "…?adapter=DIR, predictions:FILE.jsonl",
        ),
    ] = None,
    suite: Annotated[
        list[str] | None,
        typer.Option("--suite", "-s", help="Suite file or built-in name (repeatable)."),
    ] = None,
    db: DbOption = DEFAULT_DB,
    limit: Annotated[int | None, typer.Option(help="Only the first N examples of each suite.", min=1)] = None,
    resume: Annotated[
        str | None,
        typer.Option(help="Continue an interrupted run: only missing examples are done."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed (matters only when sampling).")] = 1234,
    batch_size: Annotated[
        str,
        typer.Option(
            "--batch-size",
            "-b",
            help="Prompts per model batch, or auto: the largest that fits the GPU (halved on "
            "out-of-memory); on CPU auto is 8.",
        ),
    ] = "8",
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    keep_errors: Annotated[
        bool,
        typer.Option(
            "--keep-errors",
            help="With --resume: keep failed examples as errors instead of retrying them.",
        ),
    ] = False,
    adapter: Annotated[
        list[str] | None,
        typer.Option(
            "--adapter",
            help="Adapter folder on the --model base (repeatable): base and every adapter are "
            "evaluated on one base load, each as its own run.",
        ),
    ] = None,
    allow_noop_adapter: Annotated[
        bool,
        typer.Option(
            "--allow-noop-adapter",
            help="Evaluate an adapter that does not change the base's logits (refused by default).",
        ),
    ] = False,
    mixed_batches: Annotated[
        bool,
        typer.Option(
            help="With several candidates on one base: batch their greedy generations together "
            "(peft mixed-adapter batches; each batch holds every candidate's rows).",
        ),
    ] = True,
    metric: Annotated[
        list[str] | None,
        typer.Option(
            "--metric",
            help="With a data file as --suite (messages/sharegpt/alpaca .jsonl): metric to score "
            "it with (repeatable).",
        ),
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option(
            help="K/N: only every N-th example (by example id) from the K-th, for N parallel CI jobs "
            "writing one store each; join them with `tunegate db merge`.",
        ),
    ] = None,
    require_ids: Annotated[
        bool,
        typer.Option(
            "--require-ids",
            help="A predictions: model whose records have no id is refused instead of matched by position.",
        ),
    ] = False,
    ray: Annotated[
        str | None,
        typer.Option(
            metavar="local|auto|ADDRESS",
            help="Run the --shards as Ray tasks (the `ray` extra): local starts a Ray cluster "
            "on this machine, auto joins the one `ray start` runs here ($RAY_ADDRESS), or give the "
            "cluster's address. Shard stores go to DB.shards/ (kept on failure: rerun to resume), "
            "then `db merge` joins them into --db.",
        ),
    ] = None,
    shards: Annotated[
        int | None,
        typer.Option(min=1, help="With --ray: N shards (--shard K/N), one Ray task each, retried by Ray."),
    ] = None,
) -> None:
    """Run SUITE(s) on MODEL and store every generation and score."""
    if ray or shards:  # the --shard K/N runs as Ray tasks, merged into --db (harness/ray_shards.py)
        from tunegate.cli.ray_run import run_on_ray

        return run_on_ray(ray, shards, model=model, suites=suite, db=db, limit=limit, seed=seed,
                          batch_size=batch_size, metric=metric, require_ids=require_ids, shard=shard,
                          allow_noop=allow_noop_adapter, adapter=adapter, resume=resume)  # fmt: skip
    import suites  # noqa: F401  (registers the suite kinds and the loader harness.evaluate uses)
    from harness.evaluate import Models, evaluate
    from harness.models.batching import parse_batch_size
    from harness.runner import RunOptions
    from harness.runner.shard import parse_shard
    from tunegate.cli.candidates import print_outcomes, print_see

    batch = parse_batch_size(batch_size)
    if shard and resume:
        raise UserError("--resume continues a run with its own shard: give --shard or --resume, not both")
    kn = parse_shard(shard) if shard else None
    if resume:
        model, suite = _resume_target(db, resume, model, suite)
    if not model or not suite:
        raise UserError("give --model and at least one --suite (or --resume RUN_ID)")
    if require_ids and model.startswith("predictions:") and "match=" not in model:
        model += ("&" if "?" in model else "?") + "match=id"
    if resume and len(suite) != 1:
        raise UserError("--resume continues one run: give one --suite (or none)")
    suite = _data_file_suites(suite, metric or [])
    results = evaluate(
        Models(model, tuple(adapter or []), allow_noop=allow_noop_adapter),
        suite,
        db,
        RunOptions(
            limit=limit, seed=seed, batch_size=batch, resume=resume, keep_errors=keep_errors, shard=kn
        ),
        progress=lambda: progress_bars(progress),
        mixed=mixed_batches,
    )
    if adapter or Path(model).suffix in (".yaml", ".yml"):  # several candidates: a models file, --adapter
        print_outcomes(results, db)
        return
    for e in results:
        for o in e.runs:
            console.print(
                f"[bold]{o.run_id}[/]  {o.suite}: {o.n_examples} examples "
                f"({o.n_new} done now, {o.n_cached} of the run from the generation cache, "
                f"{o.n_examples - o.n_new} stored before; {o.n_errors} errors; {o.model_calls} model calls)"
            )
    print_see(results, db)


def _data_file_suites(suites: list[str], metrics: list[str]) -> list[str]:
    """A data file as --suite (with --metric) becomes a suite made on the fly (suites.adhoc)."""
    from suites.adhoc import adhoc_suite, is_data_file

    files = [s for s in suites if is_data_file(s)]
    if metrics and not files:
        raise UserError("--metric applies to a data file given as --suite (a .jsonl/.json file)")
    if files and not metrics:
        raise UserError(f"a data file as --suite needs at least one --metric to score it ({files[0]})")
    return [str(adhoc_suite(Path(s), metrics)) if is_data_file(s) else s for s in suites]


def _resume_target(
    db: Path, run_id: str, model: str | None, suite: list[str] | None
) -> tuple[str | None, list[str] | None]:
    """The run's model spec and suite file; the stored suite path is None for a run that has
    none (imported from lm-eval, or merged from another store)."""
    from harness.evaluate import resume_target

    run_id, spec, path = resume_target(db, run_id)
    if not suite and not path:
        raise UserError(
            f"run {run_id} records no suite file (it was imported or merged from another store): "
            "give the suite with --suite to resume it",
            field="suite",
        )
    return (model or spec, suite if suite else [str(path)])
