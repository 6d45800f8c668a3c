"""Execute a planned run: cache hits first, then model batches, each stored as it lands."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from harness.config import GenerationParams
from harness.runner.plan import Item
from harness.store import GenerationRow, ScoreRow, Store
from suites.base import SuiteKind

log = logging.getLogger(__name__)

Progress = Callable[[int], None]


def execute(
    store: Store,
    run_id: str,
    suite: SuiteKind,
    items: list[Item],
    backend: Any,
    batch_size: int,
    progress: Progress,
) -> None:
    """Serve cache hits, generate the misses batch by batch, score, persist per batch."""
    cached = store.cached_generations(i.cache_key for i in items)
    hits = [i for i in items if i.cache_key in cached]
    for start in range(0, len(hits), 256):
        chunk = hits[start : start + 256]
        _persist(
            store,
            run_id,
            suite,
            chunk,
            {i.cache_key: cached[i.cache_key] for i in chunk},
            new=[],
            cached=True,
        )
        progress(len(chunk))

    misses = [i for i in items if i.cache_key not in cached]
    # Identical requests (same key) are computed once and shared.
    by_key: dict[str, list[Item]] = {}
    for i in misses:
        by_key.setdefault(i.cache_key, []).append(i)
    unique = [group[0] for group in by_key.values()]
    for rtype in dict.fromkeys(i.request.type for i in unique):
        todo = [i for i in unique if i.request.type == rtype]
        for batch in run_backend(backend, rtype, todo, batch_size):
            rows = {g.cache_key: g for g in batch}
            finished = [it for g in batch for it in by_key[g.cache_key]]
            _persist(store, run_id, suite, finished, rows, new=batch, cached=False)
            progress(len(finished))


def run_backend(
    backend: Any, rtype: str, todo: list[Item], batch_size: int
) -> Iterator[list[GenerationRow]]:
    """Model calls for `todo` (cache misses), yielded batch by batch as generation rows."""
    model_id = backend.resolved.model_id
    if rtype == "generate":
        groups: dict[str, list[Item]] = {}
        for it in todo:  # suites share params today; group anyway so mixed params stay correct
            groups.setdefault(repr(sorted(it.request.params.items())), []).append(it)
        for group in groups.values():
            params = GenerationParams(**group[0].request.params)
            replay = getattr(backend, "replay", None)  # outputs made elsewhere, by example id
            batches = (
                replay([i.example.id for i in group])
                if replay is not None
                else backend.generate([i.request.prompt for i in group], params, batch_size)
            )
            for batch in batches:
                yield [
                    GenerationRow(
                        group[k].cache_key,
                        model_id,
                        rtype,
                        group[k].request.prompt,
                        group[k].request.params,
                        g.text,
                        None,
                        g.prompt_tokens,
                        g.output_tokens,
                        g.latency_s,
                        g.error,
                    )
                    for k, g in batch
                ]
    elif rtype == "rolling_loglikelihood":
        groups = {}
        for it in todo:
            groups.setdefault((it.request.params["max_length"], it.request.params["stride"]), []).append(it)
        for (max_length, stride), group in groups.items():
            texts = [i.request.prompt for i in group]
            for batch in backend.rolling_loglikelihood(texts, max_length, stride, batch_size):
                yield [
                    GenerationRow(
                        group[k].cache_key,
                        model_id,
                        rtype,
                        group[k].request.prompt,
                        group[k].request.params,
                        None,
                        None if r.error else {"nll": r.nll, "n_tokens": r.n_tokens},
                        r.n_tokens,
                        0,
                        r.latency_s,
                        r.error,
                    )
                    for k, r in batch
                ]
    else:
        raise ValueError(f"backend cannot serve request type {rtype!r}")


def _persist(
    store: Store,
    run_id: str,
    suite: SuiteKind,
    items: list[Item],
    rows: dict[str, GenerationRow],
    *,
    new: list[GenerationRow],
    cached: bool,
) -> None:
    scores: list[ScoreRow] = []
    done = []
    for it in items:
        g = rows[it.cache_key]
        if g.error:
            scores += suite.error_scores(it.example, g.error)
        else:
            scores += suite.score(it.example, g)
        done.append((it.example.id, it.cache_key, cached, g.error))
    store.write_batch(run_id, new, done, scores)
