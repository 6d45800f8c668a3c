"""`tunegate sweep`: every checkpoint of a training run on the same suites, one base load.

tunegate sweep -m smollm2 --checkpoints out/ -s finetune-qa --html sweep.html
tunegate gate --baseline smollm2 --candidate best:finetune-qa/token_f1 --policy p.yaml
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.errors import UserError
from tunegate.cli.common import DEFAULT_DB, DbOption, console


def sweep_cmd(
    model: Annotated[str, typer.Option("--model", "-m", help="Base model spec the checkpoints adapt.")],
    checkpoints: Annotated[
        list[Path],
        typer.Option(
            "--checkpoints",
            help="A folder holding checkpoint-N folders (TRL/transformers output_dir), or checkpoint "
            "folders themselves (repeatable).",
        ),
    ],
    suite: Annotated[
        list[str], typer.Option("--suite", "-s", help="Suite file or built-in name (repeatable).")
    ],
    db: DbOption = DEFAULT_DB,
    limit: Annotated[int | None, typer.Option(help="Only the first N examples of each suite.", min=1)] = None,
    batch_size: Annotated[str, typer.Option("--batch-size", "-b", help="Prompts per batch, or auto.")] = "8",
    base: Annotated[bool, typer.Option(help="Evaluate the base too, as step 0.")] = True,
    allow_noop_adapter: Annotated[
        bool, typer.Option("--allow-noop-adapter", help="Evaluate checkpoints that do not change the base.")
    ] = False,
    html: Annotated[
        Path | None, typer.Option("--html", help="Write the leaderboard with metric vs step here.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    mixed_batches: Annotated[
        bool, typer.Option(help="Batch the checkpoints' greedy generations together (peft mixed batches).")
    ] = True,
) -> None:
    """Evaluate each checkpoint-N (in step order) as its own run linked to its step."""
    from harness.evaluate import evaluate
    from harness.models import resolve_model
    from harness.models.adapters import open_candidates
    from harness.models.batching import parse_batch_size
    from harness.runner import RunOptions
    from harness.sweep import find_checkpoints, sweep_id, training_run_of
    from suites import load_suite
    from tunegate.cli.candidates import print_outcomes
    from tunegate.cli.common import progress_bars

    batch = parse_batch_size(batch_size)
    found = find_checkpoints(checkpoints)
    loaded = [load_suite(s) for s in suite]  # bad suite files fail before the model loads
    base_r = resolve_model(model)
    if base_r.adapter is not None:
        raise UserError("give the base without ?adapter=: the checkpoints are the adapters", field="model")
    sid = sweep_id(base_r.fingerprint, found)
    trained_by = training_run_of(found)
    views = open_candidates(
        base_r,
        [c.path for c in found],
        include_base=base,
        allow_noop=allow_noop_adapter,
        roles=["checkpoint"] * len(found),
    )
    link = {"sweep_id": sid, "training_run_id": trained_by}
    if base:
        views[0].info.sweep = {**link, "step": 0}
    for v, c in zip(views[1:] if base else views, found):
        v.info.sweep = {**link, "step": c.step, "checkpoint": str(c.path), **c.losses}
    results = evaluate(
        views,
        loaded,
        db,
        RunOptions(limit=limit, batch_size=batch),
        progress=lambda: progress_bars(progress),
        mixed=mixed_batches,
    )
    print_outcomes(results, db)
    from harness.store import Store
    from reports.leaderboard import sweep_data

    with Store(db, must_exist=True) as store:
        data = sweep_data(store, sid)
        console.print(f"sweep [bold]{sid}[/]: {len(found)} checkpoints", highlight=False)
        for p in data["points"]:
            cells = "  ".join(
                f"{c} {v['text']}{' ★' if v['best'] else ''}" for c, v in zip(data["columns"], p["cells"])
            )
            console.print(f"  step {p['step']:>6}  {cells}", highlight=False)
        for col, step in data["best"].items():
            console.print(f"best by {col}: step {step} (gate it: --candidate best:{col})", highlight=False)
        if html:
            from harness.gate.leaderboard import Candidate
            from reports.leaderboard import write_leaderboard
            from tunegate.cli.report import announce

            first, *rest = views  # the order of `results`
            cands = [
                Candidate(
                    f"step {(v.info.sweep or {}).get('step')}", v.resolved.model_id, [v.resolved.model_id]
                )
                for v in rest
            ]
            if not cands:
                raise UserError("--html: a sweep page needs at least two models (the base and a checkpoint)")
            announce(write_leaderboard(store, [first.resolved.model_id], cands, html, sweeps=[sid]))
