"""Several candidates' generations in one batch: the base and its adapters on one shared model.

A run of N candidates on a suite costs N passes over the suite when each runs alone. Here the
generate requests every candidate still needs (cache misses) go through the model together: batch
k holds each candidate's own batch k (the same rows and padding it would have alone), and peft's
mixed-adapter batches (`adapter_names`) apply each row's adapter in the same forward. Each
finished batch lands in the generation cache under each candidate's own key, so the candidates'
runs that follow (harness.runner.run_suite) find every output there, score and store it as usual,
and an interrupted prefetch loses at most the batch in flight.

Only greedy decoding is batched across candidates: a sampled row's draw depends on what else is
in its batch, and each run's sampling is seeded on its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from harness.config import GenerationParams
from harness.models.base import Backend, cut_at_stop
from harness.models.batching import fixed
from harness.runner.plan import Item, plan_items
from harness.runner.run import RunOptions
from harness.runner.shard import shard_examples
from harness.store import GenerationRow, Store
from harness.suite import SelfDrivenSuite, Suite, SuiteKind

if TYPE_CHECKING:
    from harness.models.adapters import AdapterView

log = logging.getLogger(__name__)


@dataclass
class Prefetched:
    """What one prefetch generated, per candidate (index into the views)."""

    fresh: list[set[str]]
    """Cache keys generated now, per candidate: its run counts them as new, not cached."""
    calls: list[int]
    """Mixed batches each candidate took part in (its model calls)."""
    batches: int = 0
    rows: int = 0
    errors: list[str] = field(default_factory=list)


def _adapter_views(backends: Sequence[Backend]) -> list[AdapterView] | None:
    """`backends` as views of one transformers base (harness.models.adapters), or None."""
    if len(backends) < 2 or not all(b.capabilities.local_weights for b in backends):
        return None  # before the import: nothing to mix, and no transformers to load for it
    from harness.models.adapters import AdapterView

    views = [b for b in backends if isinstance(b, AdapterView)]
    return views if len(views) == len(backends) else None


def can_mix(backends: Sequence[Backend], suite: Suite, options: RunOptions) -> bool:
    """Base + adapters of one shared model, a suite the runner drives, a new (not resumed) run."""
    views = _adapter_views(backends)
    return (
        views is not None
        and len({id(v.shared) for v in views}) == 1
        and bool(views[0].shared.names)  # at least one adapter attached (else there is nothing to mix)
        and isinstance(suite, SuiteKind)
        and not isinstance(suite, SelfDrivenSuite)
        and not options.resume
    )


def prefetch_generations(
    store: Store,
    backends: Sequence[Backend],
    suite: Suite,
    options: RunOptions,
    on_start: Callable[[str, int], Callable[[int], None]] | None = None,
) -> Prefetched:
    """Generate every candidate's greedy cache misses on `suite` in mixed batches, into the cache."""
    views = _adapter_views(backends)
    if views is None or not isinstance(suite, SuiteKind):
        raise ValueError("mixed batches take views of one transformers base on a suite the runner drives")
    out = Prefetched([set() for _ in views], [0] * len(views))
    examples = suite.examples[: options.limit] if options.limit else suite.examples
    examples = shard_examples(examples, options.shard)
    per_view: list[list[Item]] = []
    for v in views:
        items = plan_items(suite, examples, set(), v.resolved.fingerprint, v.prepare, options.seed)
        items = [i for i in items if i.request.type == "generate" and not _sampled(i)]
        cached = store.cached_generations(i.cache_key for i in items)
        per_view.append(list({i.cache_key: i for i in items if i.cache_key not in cached}.values()))
    total = sum(len(x) for x in per_view)
    if not total or sum(bool(x) for x in per_view) < 2:
        return out  # one candidate (or none) has work: its own run batches it as before
    shared, tok = views[0].shared, views[0].tokenizer
    size = fixed(options.batch_size)  # a mixed batch does not search: `auto` takes the default
    progress = on_start(f"{suite.config.name} · {len(views)} candidates batched", total) if on_start else None
    # (params) → per candidate: its items in the order its own run would batch them
    groups: dict[str, list[list[tuple[Item, list[int]]]]] = {}
    for k, items in enumerate(per_view):
        for it in items:
            key = repr(sorted(it.request.params.items()))
            groups.setdefault(key, [[] for _ in views])[k].append(
                (it, tok(it.request.prompt or "", add_special_tokens=False)["input_ids"])
            )
    for lanes in groups.values():
        params = GenerationParams(**next(it for lane in lanes for it, _ in lane[:1]).request.params)
        lanes = [sorted(lane, key=lambda x: -len(x[1])) for lane in lanes]  # stable, as HFModel sorts
        n_batches = max((len(lane) + size - 1) // size for lane in lanes)
        for b in range(n_batches):
            rows = [
                (k, it, ids) for k, lane in enumerate(lanes) for it, ids in lane[b * size : (b + 1) * size]
            ]
            t0 = time.perf_counter()
            try:
                outs = shared.generate_mixed(
                    [views[k].adapter_name for k, _, _ in rows], [ids for _, _, ids in rows], params
                )
            except (RuntimeError, ValueError) as e:  # e.g. out of memory: each run retries on its own
                log.warning("mixed batch of %d rows failed (%s); the runs generate them alone", len(rows), e)
                out.errors.append(f"{type(e).__name__}: {e}")
                continue
            dt = (time.perf_counter() - t0) / len(rows)
            gens = []
            for (k, it, ids), (text, n) in zip(rows, outs):
                gens.append(
                    GenerationRow(
                        it.cache_key,
                        views[k].resolved.model_id,
                        "generate",
                        it.request.sent_text(),
                        it.request.params,
                        cut_at_stop(text, params.stop),
                        None,
                        len(ids),
                        n,
                        dt,
                        None,
                    )
                )
                out.fresh[k].add(it.cache_key)
            store.write_batch("", gens, [], [])
            for k in {k for k, _, _ in rows}:
                out.calls[k] += 1
                views[k].calls["generate"] += 1
            out.batches += 1
            out.rows += len(rows)
            if progress:
                progress(len(rows))
    return out


def _sampled(item: Item) -> bool:
    return float(item.request.params.get("temperature", 0) or 0) > 0
