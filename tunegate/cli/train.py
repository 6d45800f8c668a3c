"""`tunegate train sft | dpo` and `tunegate merge`: candidates from TRL, evaluated against their base."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tunegate.cli.common import DEFAULT_DB, DbOption, console, console_err, fmt, progress_bars

if TYPE_CHECKING:
    from harness.runner import RunOutcome
    from trainers.eval_callback import EvalDuring
    from trainers.register import Candidate

app = typer.Typer(help="Train LoRA/QLoRA adapters (SFT, DPO) as candidates.", no_args_is_help=True)

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="Training config YAML.")]
EvalOption = Annotated[
    list[str] | None,
    typer.Option(
        "--eval", help="After training, run this suite on base and candidate and compare (repeatable)."
    ),
]
LimitOption = Annotated[int | None, typer.Option(help="--eval: only the first N examples per suite.", min=1)]
ModelOption = Annotated[str | None, typer.Option("--model", "-m", help="Override the config's model spec.")]
StepsOption = Annotated[int | None, typer.Option(help="Override training.max_steps.", min=1)]
OutOption = Annotated[Path | None, typer.Option("--output-dir", help="Override where the adapter is saved.")]
SeedOption = Annotated[int | None, typer.Option(help="Override training.seed.")]
ProgressOption = Annotated[bool, typer.Option(help="Show training progress.")]
EvalSuiteOption = Annotated[
    list[str] | None,
    typer.Option(
        "--eval-suite",
        help="During training: run this suite on the live model every --eval-every steps, each a "
        "stored run linked to its step (repeatable).",
    ),
]
EvalEveryOption = Annotated[
    int | None, typer.Option("--eval-every", help="Steps between --eval-suite runs.", min=1)
]


def _trainer_command(kind: str, summary: str) -> Callable[..., None]:
    """`tunegate train KIND`: the same options for every trainer kind (harness.training.TRAINERS)."""

    def command(
        config: ConfigOption,
        eval_suites: EvalOption = None,
        db: DbOption = DEFAULT_DB,
        limit: LimitOption = None,
        model: ModelOption = None,
        max_steps: StepsOption = None,
        output_dir: OutOption = None,
        seed: SeedOption = None,
        progress: ProgressOption = True,
        eval_suite: EvalSuiteOption = None,
        eval_every: EvalEveryOption = None,
    ) -> None:
        overrides = dict(model=model, max_steps=max_steps, seed=seed, output_dir=_str(output_dir))
        during = _during(eval_suite, eval_every, limit)
        _train(kind, config, eval_suites or [], db, limit, overrides, progress, during)

    command.__doc__ = summary
    command.__name__ = f"{kind}_cmd"
    return command


sft_cmd = app.command("sft")(
    _trainer_command(
        "sft", "Supervised fine-tuning with a LoRA (or 4-bit QLoRA) adapter; registers the candidate."
    )
)
dpo_cmd = app.command("dpo")(
    _trainer_command("dpo", "DPO on preference pairs with a LoRA adapter (on a base or an SFT candidate).")
)


def _during(suites: list[str] | None, every: int | None, limit: int | None) -> Any:
    """--eval-suite/--eval-every as the trainer callback's settings (trainers.eval_callback)."""
    if bool(suites) != bool(every):
        from harness.errors import UserError

        raise UserError("--eval-suite and --eval-every go together: give both")
    if not suites:
        return None
    from trainers.eval_callback import EvalDuring

    return EvalDuring(list(suites), int(every or 0), limit)


def _train(
    kind: str,
    config: Path,
    suites: list[str],
    db: Path,
    limit: int | None,
    overrides: dict[str, Any],
    progress: bool,
    during: EvalDuring | None = None,
) -> None:
    import warnings

    from trainers.config import load_config

    loaded = load_config(config, kind, **overrides)
    from harness.extras import require

    require("trl")  # before torch is reached: the message names `tunegate[train]`, not `[local]`
    if during is not None:  # not part of the config: the adapter (and its cache key) is the same
        from suites import load_suite

        for s in during.suites:
            load_suite(s)
        loaded.eval_during = during
    if suites:  # a bad suite fails now, not after an hour of training
        from suites import load_suite

        for s in suites:
            load_suite(s)
    from trainers import train

    with step_progress(progress) as advance, warnings.catch_warnings():
        # Deprecation notices from transformers/TRL internals are not the user's to act on.
        warnings.simplefilter("ignore", FutureWarning)
        cand = train(loaded, db, advance)
    print_candidate(cand)
    if during is not None:
        _print_during(cand, db)
    if not suites:
        console.print(f'evaluate it: tunegate run -m "{cand.spec}" -s SUITE --db {db}', highlight=False)
    else:
        evaluate_candidate(loaded.cfg.model, cand.spec, suites, db, limit, progress)


def _print_during(cand: Candidate, db: Path) -> None:
    """The runs --eval-suite stored during training, step by step."""
    from harness.gate.best import sweep_runs
    from harness.store import Store

    if cand.reused:
        console.print("  [yellow]cached adapter reused: nothing trained, so no --eval-suite runs[/]")
        return
    with Store(db, must_exist=True) as store:
        rows = sweep_runs(store, sweep=cand.training_run_id)
    for run_id, _, suite, _, step, _, _ in rows:
        console.print(f"  step {step:>5}  {suite}  run {run_id}", highlight=False)
    console.print(
        f"  metric vs step: tunegate report --sweep {cand.training_run_id} -o steps.html --db {db}",
        highlight=False,
    )


def print_candidate(cand: Candidate) -> None:
    s = cand.summary
    console.print(
        f"[bold]candidate[/] {cand.model_id}  "
        f"(training run {cand.training_run_id}, parent {cand.parent_model_id})"
    )
    console.print(f"  spec     {cand.spec}", highlight=False, soft_wrap=True)
    if cand.reused:
        console.print(
            f"  reused   cached adapter {cand.adapter_path} (same config, data and base): nothing trained",
            highlight=False,
            soft_wrap=True,
        )
    line = f"  steps    {s.get('steps')}/{s.get('max_steps')}  train loss {_f(s.get('train_loss'))}"
    if s.get("best_eval_loss") is not None:
        line += f"  best eval loss {_f(s['best_eval_loss'])} at step {s.get('best_step')}"
    if s.get("stopped_early"):
        line += "  [yellow](stopped early: eval loss stopped improving)[/]"
    if s.get("reward_margin") is not None:
        line += f"  reward margin {_f(s['reward_margin'])}  accuracy {_f(s.get('reward_accuracy'))}"
    console.print(line, highlight=False)


def evaluate_candidate(
    parent: str, candidate: str, suites: list[str], db: Path, limit: int | None, progress: bool
) -> tuple[list[RunOutcome], list[RunOutcome]]:
    """Suites on the parent (cached outputs are reused) and the candidate, then paired comparisons.

    Returns both sides' run outcomes, suite by suite.
    """
    import suites as _kinds  # noqa: F401  (registers the suite kinds and the loader harness.evaluate uses)
    from harness.evaluate import evaluate_runs
    from harness.results import compare_runs
    from harness.runner import RunOptions
    from harness.store import Store
    from tunegate.cli.contamination_cmd import check_candidate as check_contamination
    from tunegate.cli.results import print_comparison

    options = RunOptions(limit=limit)
    console.rule(f"baseline: {parent}")
    base = evaluate_runs(parent, suites, db, options, progress=lambda: progress_bars(progress))
    console.rule("candidate")
    cand = evaluate_runs(candidate, suites, db, options, progress=lambda: progress_bars(progress))
    check_contamination(db, candidate, suites)  # the candidate's training data vs these suites (#15)
    console.rule("comparison (paired over examples)")
    with Store(db) as store:
        for a, b in zip(base, cand):
            print_comparison(*compare_runs(store, a.run_id, b.run_id, k=3), top=3)
    return base, cand


def merge_cmd(
    candidate: Annotated[
        str, typer.Argument(help="Adapter model spec (…?adapter=DIR), model id or training run id.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="New folder for the merged model.")],
    db: DbOption = DEFAULT_DB,
    tolerance: Annotated[float, typer.Option(help="Max |logit difference| allowed vs base+adapter.")] = 1e-4,
) -> None:
    """Merge an adapter into its base: a standalone safetensors folder, checked logit for logit."""
    import warnings

    from harness.store import Store
    from trainers.merge import find_candidate, merge_adapter

    spec = candidate
    if "adapter=" not in candidate:
        with Store(db, must_exist=True) as store:
            spec = find_candidate(store, candidate)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        res = merge_adapter(spec, out, tolerance=tolerance, db=db)
    console.print(
        f"merged {res.candidate_model_id} → {res.out} (model {res.model_id}); "
        f"max |Δlogit| vs base+adapter {res.max_abs_diff:.2e}"
    )
    console.print(f"evaluate it with: tunegate run -m hf:{res.out} -s SUITE", highlight=False)


@contextmanager
def step_progress(enabled: bool) -> Iterator[Callable[[int, int, dict[str, Any]], None] | None]:
    """A rich bar on a terminal; otherwise a line at every tenth of the run (CI logs)."""
    if not enabled:
        yield None
        return
    if not console_err.is_terminal:
        shown: set[int] = set()

        def line(step: int, total: int, logs: dict[str, Any]) -> None:
            # the last step logs train, eval and the summary: one line per step, not three
            if step not in shown and (step == total or step % max(1, total // 10) == 0):
                shown.add(step)
                console_err.print(f"train: step {step}/{total}  {_logs(logs)}", highlight=False)

        yield line
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("train"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[logs]}"),
        console=console_err,
    ) as prog:
        task = prog.add_task("train", total=None, logs="")

        def bar(step: int, total: int, logs: dict[str, Any]) -> None:
            prog.update(task, completed=step, total=total, logs=_logs(logs))

        yield bar


def _logs(logs: dict[str, Any]) -> str:
    keys = (("loss", "loss"), ("eval_loss", "eval loss"), ("rewards/margins", "margin"))
    return "  ".join(f"{label} {_f(logs[k])}" for k, label in keys if k in logs)


def _f(v: Any) -> str:
    return fmt(float(v)) if isinstance(v, int | float) else "–"


def _str(p: Path | None) -> str | None:
    return str(p) if p is not None else None
