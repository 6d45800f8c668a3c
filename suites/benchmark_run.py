"""Running a `benchmark` suite: lm-eval's simple_evaluate on our loaded model, stored per doc.

Each name in the suite's `tasks:` is one simple_evaluate call; its logged samples are written
in one transaction (a crash loses at most the task in flight, and --resume redoes only tasks
without rows). lm-eval's own aggregates and stderrs are merged into the run's config under
"lm_eval", where harness.lm_eval_rows.reported() finds them.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from harness.lm_eval_rows import jsonable, task_rows
from harness.store.queries_training import merge_run_config

if TYPE_CHECKING:
    from harness.models.batching import BatchSize
    from harness.store import GenerationRow, ScoreRow

_KEEP = ("results", "groups", "group_subtasks", "configs", "versions", "n-shot", "higher_is_better")


def run_entries(
    suite: Any, store: Any, run_id: str, backend: Any, options: Any, progress: Callable[[int], None]
) -> None:
    """simple_evaluate per entry of `suite.entries` that still has docs missing from `run_id`."""
    import lm_eval

    limit = store.get_run(run_id).config.get("limit")  # the run's own limit, also on --resume
    done = store.done_example_ids(run_id)
    todo: dict[str, list[int]] = {}
    for ex in suite.examples[:limit] if limit else suite.examples:
        if ex.id not in done:
            todo.setdefault(ex.record["task"], []).append(ex.record["doc_id"])
    cfg = suite.config
    lm = make_lm(backend, cfg.batch_size or options.batch_size, cfg.max_length)
    for entry in suite.entries:
        leaves = {leaf: todo[leaf] for leaf in entry.leaves if leaf in todo}
        if not leaves:
            continue
        # A group runs as a group (lm-eval then reports its group aggregate) unless some of its
        # tasks are already stored or cut off by --limit.
        whole = len(leaves) == len(entry.leaves) and not isinstance(entry.obj, list)
        t0 = time.perf_counter()
        # lm-eval's environment report (torch's collect_env, ~0.4 s a call) and git hash (a
        # `git describe` that prints "fatal: ..." outside a repository) are not kept by us.
        with (
            quiet_lm_eval(),
            _patched("lm_eval.evaluator", "add_env_info", lambda results: None),
            _patched("lm_eval.evaluator", "get_git_commit_hash", lambda: None),
        ):
            res = lm_eval.simple_evaluate(
                model=lm,
                tasks=[entry.obj] if whole else [entry.leaves[leaf] for leaf in leaves],
                task_manager=suite.task_manager,
                # a task run in full is left out: lm-eval then iterates its docs directly
                samples={k: v for k, v in leaves.items() if len(v) < suite.n_docs[k]},
                num_fewshot=cfg.num_fewshot,
                bootstrap_iters=cfg.bootstrap_iters,
                apply_chat_template=cfg.apply_chat_template,
                log_samples=True,
                fewshot_random_seed=options.seed,
            )
        n = sum(len(v) for v in leaves.values())
        _persist(suite, store, run_id, backend, res, entry, (time.perf_counter() - t0) / n)
        progress(n)


def _persist(
    suite: Any, store: Any, run_id: str, backend: Any, res: dict, entry: Any, per_doc: float
) -> None:
    patch = {
        "lm_eval": jsonable({k: res[k] for k in _KEEP if k in res} | {"version": res.get("lm_eval_version")})
    }
    # The aggregates go first: if the rows then fail to land, --resume redoes the task and
    # overwrites them; the reverse order could leave stored rows without lm-eval's numbers.
    merge_run_config(store, run_id, patch)
    model_id, fp = backend.resolved.model_id, backend.resolved.fingerprint
    gens: list[GenerationRow] = []
    items: list[tuple[str, str, bool, None]] = []
    scores: list[ScoreRow] = []
    for leaf, samples in res["samples"].items():
        otype = entry.leaves[leaf].OUTPUT_TYPE
        g, i, s = task_rows(leaf, suite.lm_metrics[leaf], samples, otype, model_id, fp, per_doc)
        gens, items, scores = gens + g, items + i, scores + s
    store.write_batch(run_id, gens, items, scores)


@contextlib.contextmanager
def quiet_lm_eval() -> Iterator[None]:
    """lm-eval's WARNING-level chatter and tqdm bars off while we drive it (the CLI owns the
    terminal and shows its own progress); --debug (root logger at DEBUG) keeps them."""
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        yield
        return
    import importlib

    logger = logging.getLogger("lm_eval")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.ExitStack() as stack:
            for name in _TQDM_USERS:
                bar = getattr(importlib.import_module(name), "tqdm", None)
                # lm-eval passes disable=... itself (hard-coded False in places), so force it.
                if bar is not None:
                    stack.enter_context(_patched(name, "tqdm", functools.partial(_no_bar, bar)))
            yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _patched(module_name: str, attr: str, value: Any) -> Iterator[None]:
    """Temporarily replace a module attribute (left alone when lm-eval no longer has it)."""
    import importlib

    module = importlib.import_module(module_name)
    if not hasattr(module, attr):
        yield
        return
    original = getattr(module, attr)
    setattr(module, attr, value)
    try:
        yield
    finally:
        setattr(module, attr, original)


_TQDM_USERS = ("lm_eval.api.task", "lm_eval.api.model", "lm_eval.models.huggingface")


def _no_bar(original: Any, *args: Any, **kwargs: Any) -> Any:
    return original(*args, **{**kwargs, "disable": True})


def make_lm(backend: Any, batch_size: BatchSize, max_length: int | None) -> Any:
    """lm-eval's HFLM on the backend's loaded model, so adapters, dtype, device and 4-bit stay
    ours (HFLM takes the device from the placed model); any other backend through our own LM
    adapter (suites.benchmark_lm). `auto` is lm-eval's own batch search on a GPU; on CPU, where
    its 5 trial forwards at 64 × max_length would cost more than they save, a fixed size."""
    from harness.models.batching import fixed

    if not backend.capabilities.local_weights:
        from suites.benchmark_lm import backend_lm

        return backend_lm(backend, fixed(batch_size), max_length)
    if batch_size == "auto" and not backend.resolved.device.startswith("cuda"):
        batch_size = fixed(batch_size)
    from lm_eval.models.huggingface import HFLM

    calls = backend.calls

    class CountingHFLM(HFLM):
        """Counts model batches in backend.calls, as our own backend does."""

        def _model_call(self, *args: Any, **kwargs: Any) -> Any:
            calls["forward"] += 1
            return super()._model_call(*args, **kwargs)

        def _model_generate(self, *args: Any, **kwargs: Any) -> Any:
            calls["generate"] += 1
            return super()._model_generate(*args, **kwargs)

    with quiet_lm_eval():
        return CountingHFLM(
            pretrained=backend.model,
            tokenizer=backend.tokenizer,
            batch_size=batch_size,
            max_length=max_length,
        )
