"""`tunegate run`: evaluate a model on suites, storing every output and score."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from harness.cli.common import DEFAULT_DB, DbOption, console, progress_bars
from harness.errors import UserError

if TYPE_CHECKING:
    from harness.runner.run import RunOptions, RunOutcome


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
) -> None:
    """Run SUITE(s) on MODEL and store every generation and score."""
    from harness.models.batching import parse_batch_size
    from harness.runner import RunOptions

    batch = parse_batch_size(batch_size)
    from harness.runner.shard import parse_shard

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
    from harness.cli.candidates import read_candidates_file

    suite = _data_file_suites(suite, metric or [])
    listed = read_candidates_file(Path(model))
    if listed or adapter:
        from harness.cli.candidates import evaluate_views, load_suites, open_views, print_outcomes

        base, adapters, include_base = listed or (model, list(adapter or []), True)
        if listed and adapter:
            raise UserError("give adapters in the models file or with --adapter, not both")
        opts = RunOptions(
            limit=limit, seed=seed, batch_size=batch, resume=resume, keep_errors=keep_errors, shard=kn
        )
        loaded = load_suites(suite)  # bad suite files fail before the model loads
        views = open_views(base, adapters, include_base=include_base, allow_noop=allow_noop_adapter)
        print_outcomes(evaluate_views(views, loaded, db, opts, progress, mixed=mixed_batches), db)
        return
    outcomes = evaluate(
        model,
        suite,
        db,
        RunOptions(
            limit=limit, seed=seed, batch_size=batch, resume=resume, keep_errors=keep_errors, shard=kn
        ),
        progress=progress,
        allow_noop=allow_noop_adapter,
    )
    for o in outcomes:
        console.print(
            f"[bold]{o.run_id}[/]  {o.suite}: {o.n_examples} examples "
            f"({o.n_new} done now, {o.n_cached} of the run from the generation cache, "
            f"{o.n_examples - o.n_new} stored before; {o.n_errors} errors; {o.model_calls} model calls)"
        )
    console.print(f"see: tunegate show RUN_ID --db {db}")


def evaluate(
    model: str,
    suites: list[str],
    db: Path,
    options: RunOptions,
    progress: bool = True,
    allow_noop: bool = False,
) -> list[RunOutcome]:
    """Validate every input first, then load the model and run the suites one by one."""
    from harness.models import parse_model_spec, resolve_model
    from harness.models.backend import open_backend
    from harness.runner import run_suite
    from harness.store import Store
    from suites import load_suite

    loaded = [load_suite(s) for s in suites]  # bad suite files fail before anything is stored
    spec = parse_model_spec(model)
    from harness.cli.candidates import needs_shared

    files = [s for s in loaded if _template_file(s)]
    local = spec.kind in ("hf", "gguf", "alias")
    if files and not local:
        raise UserError(
            f"suite '{files[0].config.name}' names a chat template file ({_template_file(files[0])}); "
            f"{spec.raw} applies its own template where it runs, so it cannot use it",
            path=files[0].path,
            field="chat_template",
        )
    if needs_shared(spec) or files:  # an adapter is checked to apply; the chat template recorded
        from harness.cli.candidates import evaluate_views, open_views

        views = open_views(model, [], include_base=not spec.adapter, allow_noop=allow_noop)
        return [o for _, outs in evaluate_views(views, loaded, db, options, progress) for o in outs]
    resolved = resolve_model(spec)
    backend = open_backend(resolved)
    from harness.runner.capabilities import check_capabilities

    for s in loaded:  # every suite the model cannot serve is refused before anything is stored
        check_capabilities(backend, s)
    if backend.capabilities.replay and not options.resume:  # a predictions file must cover every suite
        for s in loaded:
            backend.bind(s, s.examples[: options.limit] if options.limit else s.examples)
    outcomes = []
    with Store(db, must_exist=bool(options.resume)) as store, progress_bars(progress) as start:
        for s in loaded:
            outcomes.append(run_suite(store, backend, s, options, on_start=start))
    return outcomes


def _template_file(suite: Any) -> str | None:
    """The suite's `chat_template` when it is a file (`trained` / `base` need no client template)."""
    option = suite.template_option() if hasattr(suite, "template_option") else None
    return option if option not in (None, "trained", "base") else None


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
) -> tuple[str | None, list[Any] | None]:
    """The run's model spec and suite file; the stored suite path is None for a run that has
    none (imported from lm-eval, or merged from another store)."""
    from harness.store import Store

    with Store(db, must_exist=True) as store:
        run = store.get_run(run_id)
    path = run.config.get("suite_path")
    if not suite and not path:
        raise UserError(
            f"run {run.run_id} records no suite file (it was imported or merged from another store): "
            "give the suite with --suite to resume it",
            field="suite",
        )
    return (model or run.config.get("model_spec"), suite or [path])
