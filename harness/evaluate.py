"""Evaluate models × suites: the one orchestration path (`run`, `score`, `sweep`, `train --eval`,
`quickstart` and `tunegate.evaluate` all come here; the CLI parses arguments and prints).

    evaluate("smollm2", ["finetune-qa"], db)                                # one model
    evaluate(Models("smollm2", adapters=("out/a", "out/b")), suites, db)  # a base + adapters
    evaluate(Models("candidates.yaml"), suites, db)                       # a models file

Every input is checked before anything is stored: the suites are loaded first (bad files fail
before a model loads), each model spec is parsed once, opened once, checked once against every
suite (`check_capabilities`) and, for outputs made elsewhere, bound once to each suite's examples.
Then each suite runs on each model as its own stored run (harness.runner).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

from harness.errors import UserError
from harness.models.base import Backend, CandidateBackend, as_replay
from harness.models.spec import ModelSpec
from harness.runner import RunOptions, RunOutcome, run_suite
from harness.runner.capabilities import check_capabilities
from harness.suite import Suite, load_suite

OnStart = Callable[[str, int], Callable[[int], None]]
"""`on_start(description, total)` → `advance(n)`: one progress bar per suite and model."""
ProgressBars = Callable[[], AbstractContextManager[OnStart]]
"""Opens the progress display once the models are loaded (the CLI's rich bars)."""


@dataclass(frozen=True)
class Models:
    """What to evaluate: a model spec or a models file, optionally with adapters on it."""

    spec: str
    """A model spec (`smollm2`, `hf:DIR?adapter=A`, `openai:M@URL`, `predictions:FILE` …) or a
    models file (`candidates.yaml`: a base and its adapters)."""
    adapters: tuple[str, ...] = ()
    """Adapter folders on `spec`: the base and each adapter on one base load, each its own run."""
    include_base: bool = True
    """With adapters: evaluate the base too."""
    allow_noop: bool = False
    """Evaluate an adapter that does not change the base's logits (refused by default)."""
    tolerance: float | None = None
    """Max |Δlogit| at or below which an adapter counts as a no-op (None: the host's default)."""


class Evaluated(NamedTuple):
    """One model and its runs, suite by suite."""

    backend: Backend
    runs: list[RunOutcome]


def evaluate(
    models: str | Models | Sequence[Backend],
    suites: Sequence[str | Path | Suite],
    db: Path,
    options: RunOptions | None = None,
    *,
    progress: ProgressBars | None = None,
    mixed: bool = True,
) -> list[Evaluated]:
    """Every suite on every model, each a stored run; inputs are all checked before the store opens.

    `models`: a spec, a `Models`, or backends already opened (a sweep's checkpoint views).
    `mixed`: with several candidates on one base, their greedy generations go through the shared
    model together (harness.runner.mixed); each run is then scored and stored on its own.
    """
    from harness.runner.mixed import can_mix, prefetch_generations
    from harness.store import Store

    options = options or RunOptions()
    loaded = [s if isinstance(s, Suite) else load_suite(s) for s in suites]  # before any model loads
    if options.resume and len(loaded) != 1:
        raise UserError("--resume continues one run: give one --suite (or none)")
    if isinstance(models, str | Models):
        backends = open_models(Models(models) if isinstance(models, str) else models, loaded)
    else:
        backends = list(models)  # opened by the caller (a sweep's checkpoint views)
    if options.resume and len(backends) != 1:
        raise UserError("--resume continues one run: give one model, without --adapter")
    for b in backends:  # every suite a model cannot serve is refused before anything is stored
        for s in loaded:
            check_capabilities(b, s)
        replay = as_replay(b)
        if replay is not None and not options.resume:  # outputs made elsewhere must cover every suite
            for s in loaded:
                replay.bind(s, s.examples[: options.limit] if options.limit else s.examples)
    runs: list[list[RunOutcome]] = [[] for _ in backends]
    bars = progress() if progress is not None else nullcontext(None)
    with Store(db, must_exist=bool(options.resume)) as store, bars as start:
        for s in loaded:
            for b in backends:  # before the prefetch: the template is part of what is sent
                if isinstance(b, CandidateBackend):
                    b.use_suite_template(s.template_option())
            pre = (
                prefetch_generations(store, backends, s, options, start)
                if mixed and can_mix(backends, s, options)
                else None
            )
            for k, b in enumerate(backends):
                if isinstance(b, CandidateBackend):
                    if pre is not None and pre.batches:
                        b.info.extra["mixed_batches"] = {"candidates": len(backends), "batches": pre.batches}
                    else:
                        b.info.extra.pop("mixed_batches", None)
                o = run_suite(
                    store, b, s, options, on_start=start, fresh=pre.fresh[k] if pre else None, checked=True
                )
                if isinstance(b, CandidateBackend) and b.info.template is not None:
                    b.info.used_templates.append(b.info.template)
                runs[k].append(replace(o, model_calls=o.model_calls + pre.calls[k]) if pre else o)
    return [Evaluated(b, r) for b, r in zip(backends, runs)]


def evaluate_runs(
    models: str | Models | Sequence[Backend],
    suites: Sequence[str | Path | Suite],
    db: Path,
    options: RunOptions | None = None,
    *,
    progress: ProgressBars | None = None,
    mixed: bool = True,
) -> list[RunOutcome]:
    """`evaluate`, every model's runs in one list (model by model, suite by suite)."""
    return [o for e in evaluate(models, suites, db, options, progress=progress, mixed=mixed) for o in e.runs]


def open_models(models: Models, suites: Sequence[Suite]) -> list[Backend]:
    """The backends for `models`, each spec parsed, resolved and opened once."""
    from harness.models import parse_model_spec, resolve_model
    from harness.models.backend import open_backend
    from harness.models.models_file import read_candidates_file
    from harness.models.registry import is_local

    listed = read_candidates_file(Path(models.spec))
    if listed and models.adapters:
        raise UserError("give adapters in the models file or with --adapter, not both")
    base, adapters, include_base = listed or (models.spec, list(models.adapters), models.include_base)
    spec = parse_model_spec(base)
    if adapters or listed:
        return open_candidates(spec, adapters, include_base=include_base, models=models)
    files = [(s, f) for s in suites if (f := template_file(s)) is not None]
    if files and not is_local(spec.kind):
        s, f = files[0]
        raise UserError(
            f"suite '{s.config.name}' names a chat template file ({f}); "
            f"{spec.raw} applies its own template where it runs, so it cannot use it",
            path=s.path,
            field="chat_template",
        )
    if files or (is_local(spec.kind) and (spec.adapter or spec.options.get("chat_template"))):
        # through the adapter host: an adapter is checked to apply; the chat template is recorded
        return open_candidates(spec, [], include_base=not spec.adapter, models=models)
    return [open_backend(resolve_model(spec))]


def open_candidates(
    spec: ModelSpec, adapters: list[str], *, include_base: bool, models: Models
) -> list[Backend]:
    """A base and its adapters as views on one load, through the backend's registered adapter
    host (`BackendEntry.candidates`); `spec` may itself carry ?adapter= (then only that one)."""
    from harness.models.adapters import DEFAULT_TOLERANCE, with_adapter
    from harness.models.registry import candidates_opener

    if spec.adapter and adapters:
        raise UserError("give the base without ?adapter= when listing --adapter", field="model")
    raw = spec.raw
    if spec.adapter:
        adapters, include_base, raw = [spec.adapter], False, with_adapter(spec.raw, None)
    for a in adapters:
        if not (Path(a).expanduser() / "adapter_config.json").is_file():
            raise UserError(f"adapter folder {a} has no adapter_config.json", field="adapter")
    opener = candidates_opener(spec.kind)
    if opener is None:
        raise UserError(
            f"adapters are attached to a local transformers model; {spec.raw} is not one", field="model"
        )
    return list(
        opener(
            raw,
            [str(Path(a).expanduser().resolve()) for a in adapters],
            include_base=include_base,
            allow_noop=models.allow_noop,
            tolerance=DEFAULT_TOLERANCE if models.tolerance is None else models.tolerance,
        )
    )


def template_file(suite: Suite) -> str | None:
    """The suite's `chat_template` when it is a file (`trained` / `base` need no client template)."""
    option = suite.template_option()
    return option if option not in (None, "trained", "base") else None


def resume_target(db: Path, run_ref: str) -> tuple[str, str | None, str | None]:
    """The run id, model spec and suite file of a stored run; the suite path is None for a run
    that has none (imported from lm-eval, or merged from another store)."""
    from harness.store import Store

    with Store(db, must_exist=True) as store:
        run = store.get_run(run_ref)
    return run.run_id, run.config.get("model_spec"), run.config.get("suite_path")
