"""Execute a planned run: cache hits first, then model batches, each stored as it lands."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from harness.config import GenerationParams
from harness.models.base import Backend, Generated, LogLikelihood, RollingLL, as_replay
from harness.models.batching import BatchSize
from harness.runner.plan import Item
from harness.store import GenerationRow, ScoreRow, Store
from harness.suite import Example, RunSettings, SuiteKind
from harness.transport import EndpointGone

log = logging.getLogger(__name__)

Progress = Callable[[int], None]


def execute(
    store: Store,
    run_id: str,
    suite: SuiteKind,
    items: list[Item],
    backend: Backend,
    batch_size: BatchSize,
    progress: Progress,
    *,
    replace: bool = False,
    seed: int | None = None,
    fresh: set[str] | None = None,
) -> None:
    """Serve cache hits, generate the misses batch by batch, score, persist per batch.
    `replace`: some items were stored before as errors (a resume retrying them).
    `fresh`: keys generated for this run just before it (harness.runner.mixed), stored as new."""
    cached = store.cached_generations(i.cache_key for i in items)
    fresh = fresh or set()
    hits = [i for i in items if i.cache_key in cached]
    for was_cached in (True, False):
        part = [i for i in hits if (i.cache_key not in fresh) == was_cached]
        for start in range(0, len(part), 256):
            chunk = part[start : start + 256]
            _persist(
                store,
                run_id,
                suite,
                chunk,
                {i.cache_key: cached[i.cache_key] for i in chunk},
                new=[],
                cached=was_cached,
                replace=replace,
            )
            progress(len(chunk))

    misses = [i for i in items if i.cache_key not in cached]
    # Identical requests (same key) are computed once and shared.
    by_key: dict[str, list[Item]] = {}
    for i in misses:
        by_key.setdefault(i.cache_key, []).append(i)
    unique = [group[0] for group in by_key.values()]
    try:
        for rtype in dict.fromkeys(i.request.type for i in unique):
            todo = [i for i in unique if i.request.type == rtype]
            for batch in run_backend(backend, rtype, todo, batch_size, seed):
                rows = {g.cache_key: g for g in batch}
                finished = [it for g in batch for it in by_key[g.cache_key]]
                _persist(store, run_id, suite, finished, rows, new=batch, cached=False, replace=replace)
                progress(len(finished))
    except EndpointGone as e:  # the stored batches stay: say how to finish the run
        default = Path(store.path).resolve() == Path("tunegate.duckdb").resolve()
        on_db = "" if default else f" --db {store.path}"
        raise EndpointGone(
            f"{e}; run {run_id} keeps its finished examples: start the server again and continue "
            f"with `tunegate run --resume {run_id}{on_db}`"
        ) from None


def generations(
    store: Store, backend: Backend, suite: SuiteKind, examples: list[Example], options: RunSettings
) -> dict[str, tuple[str, GenerationRow, bool]]:
    """example id → (cache key, generation row, was it a cache hit), for a kind that needs the
    outputs before it scores them (judges): cache first, misses generated in batches and stored
    in the cache as they land (the kind writes run_examples and scores itself)."""
    from harness.runner.plan import plan_items

    items = plan_items(
        suite,
        examples,
        set(),
        backend.resolved.fingerprint,
        backend.prepare,
        options.seed,
        keys_by_example=backend.capabilities.replay,
    )
    rows = store.cached_generations(i.cache_key for i in items)
    hits = set(rows)
    misses = list({i.cache_key: i for i in items if i.cache_key not in rows}.values())
    for batch in run_backend(backend, "generate", misses, options.batch_size, options.seed):
        store.write_batch("", batch, [], [])
        rows.update((g.cache_key, g) for g in batch)
    return {i.example.id: (i.cache_key, rows[i.cache_key], i.cache_key in hits) for i in items}


def run_backend(
    backend: Backend, rtype: str, todo: list[Item], batch_size: BatchSize, seed: int | None = None
) -> Iterator[list[GenerationRow]]:
    """Model calls for `todo` (cache misses), yielded batch by batch as generation rows."""
    model_id = backend.resolved.model_id
    replay = as_replay(backend)

    def row(
        it: Item,
        output: str | None,
        result: dict[str, Any] | None,
        n_in: int | None,
        n_out: int | None,
        dt: float,
        err: str | None,
    ) -> GenerationRow:
        return GenerationRow(
            it.cache_key,
            model_id,
            rtype,
            it.request.sent_text(),
            it.request.params,
            output,
            result,
            n_in,
            n_out,
            dt,
            err,
        )

    if rtype == "generate":
        groups: dict[str, list[Item]] = {}
        for it in todo:  # suites share params today; group anyway so mixed params stay correct
            groups.setdefault(repr(sorted(it.request.params.items())), []).append(it)
        for group in groups.values():
            params = GenerationParams(**group[0].request.params)
            batches = (
                replay.replay([i.example.id for i in group])  # outputs made elsewhere, by example id
                if replay is not None
                else backend.generate([i.request for i in group], params, batch_size, seed=seed)
            )
            for batch in batches:
                gens: list[tuple[int, Generated]] = batch
                yield [
                    row(group[k], g.text, g.usage, g.prompt_tokens, g.output_tokens, g.latency_s, g.error)
                    for k, g in gens
                ]
    elif rtype == "loglikelihood":
        pairs = [(it.request.prompt or "", it.request.continuation or "") for it in todo]
        for batch in backend.loglikelihood(pairs, batch_size):
            lls: list[tuple[int, LogLikelihood]] = batch
            yield [
                row(
                    todo[k],
                    None,
                    None
                    if r.error
                    else {"logprob": r.logprob, "is_greedy": r.is_greedy, "n_tokens": r.n_tokens},
                    None,
                    r.n_tokens,
                    r.latency_s,
                    r.error,
                )
                for k, r in lls
            ]
    elif rtype == "rolling_loglikelihood":
        rgroups: dict[tuple[int, int], list[Item]] = {}
        for it in todo:
            rgroups.setdefault((it.request.params["max_length"], it.request.params["stride"]), []).append(it)
        for (max_length, stride), group in rgroups.items():
            texts = [i.request.prompt or "" for i in group]
            for batch in backend.rolling_loglikelihood(texts, max_length, stride, batch_size):
                rolled: list[tuple[int, RollingLL]] = batch
                yield [
                    row(
                        group[k],
                        None,
                        None if r.error else {"nll": r.nll, "n_tokens": r.n_tokens},
                        r.n_tokens,
                        0,
                        r.latency_s,
                        r.error,
                    )
                    for k, r in rolled
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
    replace: bool = False,
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
    store.write_batch(run_id, new, done, scores, replace=replace)
