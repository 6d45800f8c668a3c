"""`tunegate quickstart`: the whole loop on the bundled model and suites, in minutes on a CPU."""

from __future__ import annotations

from typing import Annotated

import typer

from harness.cli.common import DEFAULT_DB, DbOption, console

BASELINE = "smollm2"
# Until a trained adapter exists, the candidate is the same weights in bfloat16: the
# "did reduced precision cost us anything?" check people run before shipping a cheaper build.
CANDIDATE = "smollm2?dtype=bfloat16"
# general-mini (lm-eval tasks) is the "general ability" forgetting check.
SUITES = ["finetune-qa", "sentiment", "json-extract", "heldout-text", "general-mini"]
POLICY = "policies/quickstart.yaml"  # under suites/builtin/


def quickstart_cmd(
    db: DbOption = DEFAULT_DB,
    limit: Annotated[int | None, typer.Option(help="Only the first N examples of each suite.", min=1)] = None,
    candidate: Annotated[str, typer.Option(help="Candidate model spec.")] = CANDIDATE,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Evaluate the bundled SmolLM2 and a candidate on the built-in suites, then compare."""
    from harness.cli.gate import report_gate
    from harness.cli.results import print_comparison
    from harness.cli.run import evaluate
    from harness.gate import load_policy, run_gate
    from harness.results import compare_runs
    from harness.runner import RunOptions
    from harness.store import Store
    from suites.loader import BUILTIN_DIR

    options = RunOptions(limit=limit)
    console.rule(f"baseline: {BASELINE}")
    base = evaluate(BASELINE, SUITES, db, options, progress=progress)
    console.rule(f"candidate: {candidate}")
    cand = evaluate(candidate, SUITES, db, options, progress=progress)
    console.rule("comparison (paired over examples)")
    with Store(db) as store:
        for a, b in zip(base, cand):
            print_comparison(*compare_runs(store, a.run_id, b.run_id, k=3), top=3)
        console.rule(f"gate: {POLICY}")
        policy, doc = load_policy(BUILTIN_DIR / POLICY)
        result = run_gate(store, policy, doc, [o.run_id for o in base], [o.run_id for o in cand])
    report_gate(result)  # the verdict is the demo; quickstart itself exits 0 either way
    console.print(
        f"\nstored in {db}: `tunegate runs --db {db}`, `tunegate show RUN_ID`, or SQL, e.g.\n"
        f'  duckdb {db} "SELECT run_id, metric, avg(value) FROM scores GROUP BY ALL"'
    )
