"""`--candidate best:SUITE/METRIC[@SWEEP]`: the best checkpoint of a sweep, by one metric.

Sweep runs carry `runs.config.backend.candidate.sweep` (harness.sweep, `train --eval-every`);
the newest sweep of SUITE is used unless one is named. The base (step 0) is not a candidate.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import UserError
from harness.store import Store, queries_gate

PREFIX = "best:"


@dataclass(frozen=True)
class Best:
    model_id: str
    run_id: str
    step: int
    value: float
    sweep_id: str
    metric: str
    suite: str


def sweep_runs(store: Store, suite: str | None = None, sweep: str | None = None) -> list[tuple]:
    """(run_id, model_id, suite name, sweep id, step, role, started_at) of completed sweep runs."""
    return queries_gate.sweep_runs(store, suite, sweep)


def best_candidate(store: Store, ref: str) -> Best:
    """Resolve `best:SUITE/METRIC[@SWEEP]` to the checkpoint whose run scored best."""
    from harness.results import summarize_run

    body = ref.removeprefix(PREFIX)
    body, _, sweep = body.partition("@")
    suite, _, metric = body.partition("/")
    if not suite or not metric:
        raise UserError(f"'{ref}': write best:SUITE/METRIC (optionally @SWEEP_ID)", field="candidate")
    rows = sweep_runs(store, suite, sweep or None)
    if not rows:
        raise UserError(
            f"'{ref}': no completed sweep runs of suite '{suite}' in {store.path}", field="candidate"
        )
    newest = sweep or rows[-1][3]
    scored = []
    for run_id, model_id, _, sid, step, role, _ in rows:
        if sid != newest or role == "base":
            continue
        _, metrics = summarize_run(store, run_id)
        m = next((m for m in metrics if m.metric == metric), None)
        if m is None:
            known = ", ".join(x.metric for x in metrics)
            raise UserError(
                f"'{ref}': suite '{suite}' has no metric '{metric}' (metrics: {known})", field="candidate"
            )
        v = m.summary.value
        if v == v:  # nan: every example failed
            scored.append(
                (v if m.higher_is_better else -v, -step, Best(model_id, run_id, step, v, sid, metric, suite))
            )
    if not scored:
        raise UserError(
            f"'{ref}': sweep {newest} has no scored checkpoint of suite '{suite}'", field="candidate"
        )
    return max(scored, key=lambda t: (t[0], t[1]))[2]
