"""Read stored runs into summaries and paired comparisons (no model is ever called here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from harness import stats
from harness.errors import UserError
from harness.store import RunRecord, Store


@dataclass(frozen=True)
class MetricSummary:
    metric: str
    aggregation: str
    higher_is_better: bool
    summary: stats.Summary
    n_errors: int


@dataclass(frozen=True)
class MetricComparison:
    metric: str
    aggregation: str
    paired: stats.Paired
    n_errors: tuple[int, int]
    only_in: tuple[int, int]
    """Examples scored in only one of the two runs (left out of the pairing)."""
    regressed: list[dict[str, Any]]


def _arrays(
    rows: list[tuple[str, float | None, float, str | None, Any]],
) -> tuple[list[str], stats.ScoreArrays, int]:
    ok = [r for r in rows if r[3] is None and r[1] is not None]
    ids = [r[0] for r in ok]
    value = np.array([r[1] for r in ok], dtype=np.float64)
    weight = np.array([r[2] if r[2] is not None else 1.0 for r in ok], dtype=np.float64)
    pred = np.array([(r[4] or {}).get("pred") for r in ok], dtype=object)
    label = np.array([(r[4] or {}).get("label") for r in ok], dtype=object)
    return ids, stats.ScoreArrays(value, weight, pred, label), len(rows) - len(ok)


def summarize_run(store: Store, run_id: str) -> tuple[RunRecord, list[MetricSummary]]:
    """Per metric: n, aggregate, standard error, 95% bootstrap CI; errors counted apart."""
    run = store.get_run(run_id)
    out = []
    for m in store.run_metrics(run.run_id):
        _, arr, n_err = _arrays(store.scores(run.run_id, m["metric"]))
        out.append(
            MetricSummary(
                m["metric"],
                m["aggregation"],
                m["higher_is_better"],
                stats.summarize(arr, m["aggregation"]),
                n_err,
            )
        )
    return run, out


def compare_runs(
    store: Store, a: str, b: str, k: int = 5
) -> tuple[RunRecord, RunRecord, list[MetricComparison]]:
    """Paired comparison of run `b` (candidate) against run `a` (baseline), metric by metric."""
    ra, rb = store.get_run(a), store.get_run(b)
    if ra.suite_id != rb.suite_id:
        raise UserError(
            f"runs {ra.run_id} ({ra.suite_id}) and {rb.run_id} ({rb.suite_id}) are of "
            "different suites (or suite versions); compare runs of the same suite"
        )
    metrics_b = {m["metric"]: m for m in store.run_metrics(rb.run_id)}
    out = []
    for m in store.run_metrics(ra.run_id):
        if m["metric"] not in metrics_b:
            continue
        ids_a, arr_a, err_a = _arrays(store.scores(ra.run_id, m["metric"]))
        ids_b, arr_b, err_b = _arrays(store.scores(rb.run_id, m["metric"]))
        pos_b = {e: i for i, e in enumerate(ids_b)}
        common = [(i, pos_b[e]) for i, e in enumerate(ids_a) if e in pos_b]
        ia = np.array([c[0] for c in common], dtype=np.int64)
        ib = np.array([c[1] for c in common], dtype=np.int64)
        pa, pb = arr_a.take(ia), arr_b.take(ib)
        paired = stats.compare_paired(
            pa,
            pb,
            aggregation=m["aggregation"],
            higher_is_better=m["higher_is_better"],
            binary=m["binary"],
        )
        worst = stats.regressions(pa.value, pb.value, higher_is_better=m["higher_is_better"], k=k)
        worst_ids = [ids_a[ia[i]] for i in worst]
        outs_a = store.example_outputs(ra.run_id, worst_ids)
        outs_b = store.example_outputs(rb.run_id, worst_ids)
        regressed = [
            {
                "example_id": e,
                "baseline": float(pa.value[i]),
                "candidate": float(pb.value[i]),
                "reference": outs_a.get(e, {}).get("reference"),
                "baseline_output": outs_a.get(e, {}).get("output"),
                "candidate_output": outs_b.get(e, {}).get("output"),
            }
            for i, e in zip(worst, worst_ids)
        ]
        out.append(
            MetricComparison(
                m["metric"],
                m["aggregation"],
                paired,
                (err_a, err_b),
                (len(ids_a) - len(common), len(ids_b) - len(common)),
                regressed,
            )
        )
    return ra, rb, out
