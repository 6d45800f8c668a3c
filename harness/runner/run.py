"""One model on one suite, as a stored run that can be interrupted and resumed."""

from __future__ import annotations

import logging
import platform
import secrets
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Literal

from harness import signals
from harness.errors import UserError
from harness.measurement import build_record
from harness.models.base import Backend, as_replay
from harness.models.resolve import ResolvedModel
from harness.runner.capabilities import check_capabilities
from harness.runner.execute import execute
from harness.runner.plan import plan_items
from harness.runner.shard import shard_examples, shard_of
from harness.store import Store
from harness.store.queries_api import cached_count
from harness.suite import Example, SelfDrivenSuite, Suite, SuiteKind, content_hash, suite_id

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    limit: int | None = None
    """Only the first N examples of the suite."""
    seed: int = 1234
    batch_size: int | Literal["auto"] = 8
    """Requests per model batch; "auto": the largest that fits (backends with
    `capabilities.auto_batch`; harness.models.batching)."""
    resume: str | None = None
    """Run id to continue: examples without a stored result, and those that failed, are done."""
    keep_errors: bool = False
    """With `resume`: keep failed examples as they are instead of retrying them."""
    shard: tuple[int, int] | None = None
    """(K, N): only every N-th example by id, from the K-th (`run --shard K/N`; harness.runner.shard)."""


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    suite: str
    n_examples: int
    n_new: int
    n_errors: int
    model_calls: int
    n_cached: int = 0
    """Examples of the run served from the generation cache (no model call)."""


def run_suite(
    store: Store,
    backend: Backend,
    suite: Suite,
    options: RunOptions,
    on_start: Callable[[str, int], Callable[[int], None]] | None = None,
    fresh: set[str] | None = None,
    *,
    checked: bool = False,
) -> RunOutcome:
    """Run `suite` on `backend`, writing every finished batch to `store`.

    `on_start(description, total)` returns a progress callback (the CLI's progress bar).
    KeyboardInterrupt marks the run 'interrupted', any other exception 'failed'; both keep
    the finished batches, and `RunOptions(resume=run_id)` continues from them.
    `fresh`: cache keys generated for this run just before it, batched with other candidates
    (harness.runner.mixed): served from the cache but stored as new, not as cache hits.
    `checked`: the caller (harness.evaluate) has checked the backend against the suite and, for a
    new run, bound a replaying backend to its examples; neither is done again here.
    """
    resolved = backend.resolved
    if not checked:
        check_capabilities(backend, suite)  # before anything is stored
    if options.batch_size == "auto" and not backend.capabilities.auto_batch:
        from dataclasses import replace

        from harness.models.batching import DEFAULT_BATCH

        options = replace(options, batch_size=DEFAULT_BATCH)  # nothing to search: a fixed size
    sid = suite_id(suite)
    if options.shard and isinstance(suite, SelfDrivenSuite):
        raise UserError(
            f"--shard splits the examples of task and perplexity suites; {suite.kind} suite "
            f"'{suite.config.name}' runs its own request loop and cannot be sharded"
        )
    examples = suite.examples[: options.limit] if options.limit else suite.examples
    if options.resume:
        run = store.get_run(options.resume)
        if run.suite_id != sid:
            raise UserError(
                f"run {run.run_id} is of suite '{run.suite_id}', not '{sid}' "
                "(the suite or its data changed since)"
            )
        if run.model_id != resolved.model_id:
            raise UserError(
                f"run {run.run_id} is of model {run.model_id} ({run.model_spec}), not {resolved.model_id}"
            )
        n_failed = len(store.done_example_ids(run.run_id)) - len(
            store.done_example_ids(run.run_id, include_errors=False)
        )
        if run.status == "completed" and (options.keep_errors or not n_failed):
            raise UserError(
                f"run {run.run_id} is already completed"
                + (f" ({n_failed} failed examples kept by --keep-errors)" if n_failed else "")
            )
        run_id = run.run_id
        limit = run.config.get("limit")  # the original run's limit, not today's flags
        examples = suite.examples[:limit] if limit else suite.examples
        _bind(backend, suite, examples)
        examples = shard_examples(examples, shard_of(run.config))
        done = store.done_example_ids(run_id, include_errors=options.keep_errors)
        store.reopen_run(run_id)
    else:
        if not checked:  # before sharding: order-matched predictions count from the top
            _bind(backend, suite, examples)
        examples = shard_examples(examples, options.shard)
        _register(store, resolved, suite, sid)
        run_id = new_run_id()
        done = set()
        store.create_run(
            run_id,
            resolved.model_id,
            sid,
            config={
                "limit": options.limit,
                "batch_size": options.batch_size,
                "model_spec": resolved.spec.raw,
                "suite_path": str(suite.path),
                "suite": suite.config.model_dump(mode="json"),
                "backend": backend.describe(),
                "endpoint": backend.capabilities.endpoint,
                **({"shard": {"k": options.shard[0], "n": options.shard[1]}} if options.shard else {}),
            },
            seed=options.seed,
            versions=versions(),
            git_sha=git_sha(),
            host=platform.node(),
            n_examples=len(examples),
            metrics=[(m.name, m.spec, m.aggregation, m.higher_is_better, m.binary) for m in suite.metrics],
            measurement=build_record(backend, suite, options.seed),
        )
    _seed_everything(options.seed)
    # A kind that drives its own request loop (lm-eval, judges) does everything between create and mark.
    own_loop = suite if isinstance(suite, SelfDrivenSuite) else None
    items = (
        plan_items(
            suite,
            examples,
            done,
            resolved.fingerprint,
            backend.prepare,
            options.seed,
            keys_by_example=backend.capabilities.replay,
        )
        if isinstance(suite, SuiteKind) and own_loop is None
        else []
    )
    n_todo = sum(e.id not in done for e in examples) if own_loop else len(items)
    progress = on_start(f"{suite.config.name}", n_todo) if on_start else (lambda n: None)
    calls_before = sum(backend.calls.values())
    try:
        if own_loop is not None:
            own_loop.execute_run(store, run_id, backend, options, progress)
        elif isinstance(suite, SuiteKind):
            execute(
                store,
                run_id,
                suite,
                items,
                backend,
                options.batch_size,
                progress,
                replace=bool(options.resume and not options.keep_errors),
                seed=options.seed,
                fresh=fresh,
            )
        else:
            raise TypeError(f"{type(suite).__name__} is neither a SuiteKind nor a SelfDrivenSuite")
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (harness.signals): the batch in flight is discarded
        store.mark_run(run_id, "interrupted", signals.reason())
        signals.note_interrupted("run", run_id, str(store.path))
        raise
    except Exception as e:
        store.mark_run(run_id, "failed", f"{type(e).__name__}: {e}")
        raise
    store.mark_run(run_id, "completed")
    n_done, n_err = store.counts(run_id)
    n_cached = cached_count(store, run_id)
    return RunOutcome(
        run_id,
        suite.config.name,
        n_done,
        n_todo,
        n_err,
        sum(backend.calls.values()) - calls_before,
        n_cached,
    )


def _bind(backend: Backend, suite: Suite, examples: list[Example]) -> None:
    """Let a backend that serves fixed outputs (a predictions file) check it covers `examples`
    before anything is stored."""
    replay = as_replay(backend)
    if replay is not None:
        replay.bind(suite, examples)


def _register(store: Store, resolved: ResolvedModel, suite: Suite, sid: str) -> None:
    if resolved.adapter is not None:
        assert resolved.base_model_id is not None and resolved.base_fingerprint is not None
        store.upsert_model(
            resolved.base_model_id,
            resolved.spec.raw.split("?")[0],
            resolved.spec.kind,
            resolved.base_fingerprint,
            load_options=resolved.options,
        )
    store.upsert_model(
        resolved.model_id,
        resolved.spec.raw,
        resolved.spec.kind,
        resolved.fingerprint,
        base_model_id=resolved.base_model_id,
        adapter_path=str(resolved.adapter) if resolved.adapter else None,
        load_options=resolved.options,
    )
    store.upsert_suite(
        sid,
        suite.config.name,
        suite.kind,
        content_hash(suite),
        str(suite.path),
        suite.config.model_dump(mode="json"),
        [(ex.id, ex.record, ex.references) for ex in suite.examples],
    )


def new_run_id() -> str:
    return "r-" + secrets.token_hex(4)


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("tunegate", "torch", "transformers", "peft", "duckdb"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_sha() -> str | None:
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() or None if r.returncode == 0 else None


def _seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    try:
        import torch
    except ImportError:
        return
    torch.manual_seed(seed)
