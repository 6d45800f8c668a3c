"""`tunegate run --ray ADDRESS --shards N`: the checks and the output around harness.ray_shards."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import typer
from rich.markup import escape

from harness.errors import UserError
from tunegate.cli.common import console, console_err


def run_on_ray(
    address: str | None,
    shards: int | None,
    *,
    model: str | None,
    suites: Sequence[str] | None,
    db: Path,
    limit: int | None,
    seed: int,
    batch_size: str,
    metric: Sequence[str] | None,
    require_ids: bool,
    allow_noop: bool,
    adapter: Sequence[str] | None,
    shard: str | None,
    resume: str | None,
) -> None:
    """Check the options, run the shards on Ray, merge them into `db`, say what was stored."""
    if not address or not shards:
        raise UserError(
            "--ray and --shards go together: --shards N splits the run into N shards that run as "
            "Ray tasks on the cluster --ray names (one shard per CI job instead: --shard K/N)",
            field="ray" if not address else "shards",
        )
    if shard:
        raise UserError("--shards N runs every shard itself: give --shards N or --shard K/N, not both")
    if resume:
        raise UserError(
            f"with --ray, run the same command again to resume: it continues the shard stores in "
            f"{db}.shards/ (--resume continues one run)"
        )
    if adapter:
        raise UserError(
            "--ray shards one model: give each adapter as its own --model BASE?adapter=DIR, or use "
            "--adapter without --ray"
        )
    if not model or not suites:
        raise UserError("give --model and at least one --suite")
    from harness.models import parse_model_spec
    from harness.models.batching import parse_batch_size
    from harness.models.models_file import read_candidates_file
    from harness.ray_shards import import_ray, run_shards

    if read_candidates_file(Path(model)):
        raise UserError(f"--ray shards one model: {model} lists several; run it without --ray", path=model)
    parse_batch_size(batch_size)
    spec = parse_model_spec(model)
    _check_suites(suites)  # bad suite files fail before a cluster starts
    import_ray()
    run_args = [
        *(["--limit", str(limit)] if limit else []),
        *[a for m in metric or [] for a in ("--metric", m)],
        *(["--require-ids"] if require_ids else []),
    ]
    shared_args = ["--seed", str(seed), "--batch-size", batch_size]
    shared_args += ["--allow-noop-adapter"] if allow_noop else []
    console_err.print(f"{shards} shards of {model} on Ray ({address}); stores and logs in {db}.shards/")
    from harness.ray_shards import ShardsFailed

    try:
        outcome = run_shards(
            address,
            shards,
            db,
            model,
            list(suites),
            run_args=run_args,
            shared_args=shared_args,
            local_model=spec.kind not in ("openai", "predictions"),
            on_done=lambda d: console_err.print(
                f"shard {d.k}/{shards} finished in {d.seconds:.0f}s"
                + (f" (attempt {d.attempts})" if d.attempts > 1 else "")
                + (f", resumed {', '.join(d.resumed)}" if d.resumed else ""),
                highlight=False,
            ),
        )
    except ShardsFailed as e:
        console_err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    from harness.store import Store

    with Store(db, must_exist=True) as store:
        for run_id, parts in outcome.merged_runs:
            run = store.get_run(run_id)
            console.print(
                f"[bold]{run_id}[/]  {run.suite_name}: {run.n_examples} examples from {len(parts)} shards "
                f"({run.status})",
                highlight=False,
            )
    gpus = f", {outcome.num_gpus} GPU per shard" if outcome.num_gpus else ""
    console.print(f"Ray ready in {outcome.ray_start_s:.1f}s{gpus}; see: tunegate show RUN_ID --db {db}")


def _check_suites(suites: Sequence[str]) -> None:
    """Every suite file loads, and splits by example (data files given as --suite: in the shards)."""
    from harness.suite import SelfDrivenSuite
    from suites import load_suite
    from suites.adhoc import is_data_file

    for ref in suites:
        if is_data_file(ref):
            continue
        s = load_suite(ref)
        if isinstance(s, SelfDrivenSuite):
            raise UserError(
                f"--shards splits the examples of task and perplexity suites; {s.kind} suite "
                f"'{s.config.name}' runs its own request loop and cannot be sharded",
                path=ref,
            )
