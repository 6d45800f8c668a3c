"""`tunegate quickstart`: the whole loop on the bundled model and suites, in minutes on a CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tunegate.cli.common import DEFAULT_DB, DbOption, console

BASELINE = "smollm2"
# general-mini (lm-eval tasks) is the "general ability" forgetting check; judge-qa grades the
# finetune-qa answers with a local judge (an endpoint when TUNEGATE_JUDGE_BASE_URL is set).
SUITES = ["finetune-qa", "sentiment", "json-extract", "heldout-text", "general-mini", "judge-qa"]
POLICY = "policies/quickstart.yaml"  # under suites/builtin/


def quickstart_cmd(
    db: DbOption = DEFAULT_DB,
    limit: Annotated[int | None, typer.Option(help="Only the first N examples of each suite.", min=1)] = None,
    candidate: Annotated[
        str | None,
        typer.Option(help="Candidate model spec; default: QLoRA-SFT SmolLM2 on the bundled data (cached)."),
    ] = None,
    steps: Annotated[
        int | None, typer.Option(help="Training steps for the bundled candidate (default 30).", min=1)
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Fine-tune SmolLM2 with QLoRA on the bundled data, evaluate base vs candidate, compare, gate."""
    from harness.gate import load_policy, run_gate
    from harness.store import Store
    from reports import write_report
    from suites.loader import BUILTIN_DIR
    from tunegate.cli.gate import report_gate
    from tunegate.cli.train import evaluate_candidate

    if candidate is None:
        candidate = _train_candidate(db, steps, progress)
    base, cand = evaluate_candidate(BASELINE, candidate, SUITES, db, limit, progress)
    with Store(db) as store:
        console.rule(f"gate: {POLICY}")
        policy, doc = load_policy(BUILTIN_DIR / POLICY)
        result = run_gate(store, policy, doc, [o.run_id for o in base], [o.run_id for o in cand])
        html = write_report(store, None, Path(db).with_name("quickstart-report.html"), gate=result)
    report_gate(result)  # the verdict is the demo; quickstart itself exits 0 either way
    if any(c.check == "judge_health" and not c.passed for c in result.checks):
        console.print(
            "note: judge-qa is graded by the bundled 135M model, which cannot tell the sanity set's "
            "reference answers from wrong ones, so its verdicts are not evidence and the gate says so. "
            "Point TUNEGATE_JUDGE_BASE_URL (and TUNEGATE_JUDGE_MODEL) at an OpenAI-compatible server "
            "to grade with a real judge.",
            highlight=False,
            markup=False,
        )
    console.print(f"HTML report: {html}", highlight=False)
    console.print(
        f"\nstored in {db}: `tunegate runs --db {db}`, `tunegate show {cand[0].run_id} --db {db}`, "
        "or SQL, e.g.\n"
        f'  duckdb {db} "SELECT run_id, metric, avg(value) FROM scores GROUP BY ALL"'
    )


def _train_candidate(db: Path, steps: int | None, progress: bool) -> str:
    """The bundled QLoRA SFT run; an adapter trained earlier with the same config is reused."""
    import warnings

    from trainers.quickstart import quickstart_training
    from tunegate.cli.train import print_candidate, step_progress

    console.rule("training: QLoRA SFT of smollm2 on trainers/data/finetune_sft.jsonl")
    with step_progress(progress) as advance, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        cand = quickstart_training(db, advance, max_steps=steps)
    print_candidate(cand)
    return cand.spec
