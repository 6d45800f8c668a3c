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


def _score_arrays(cols: dict[str, Any], suffix: str = "", labels: bool = False) -> stats.ScoreArrays:
    return stats.ScoreArrays(
        np.asarray(cols["value" + suffix], dtype=np.float64),
        np.asarray(cols["weight" + suffix], dtype=np.float64),
        np.asarray(cols["pred" + suffix], dtype=object) if labels else None,
        np.asarray(cols["label" + suffix], dtype=object) if labels else None,
    )


def paired_arrays(
    store: Store, run_a: str, run_b: str, metric: str, aggregation: str
) -> tuple[stats.ScoreArrays, stats.ScoreArrays, np.ndarray, dict[str, Any]]:
    """Both runs' scores of one metric on the examples both scored, aligned, as numpy arrays."""
    labels = aggregation == "macro_f1"
    cols = store.paired_score_columns(run_a, run_b, metric, labels=labels)
    a = _score_arrays(cols, "_a", labels)
    b = _score_arrays(cols, "_b", labels)
    return a, b, np.asarray(cols["example_id"], dtype=object), cols


def summarize_run(store: Store, run_id: str) -> tuple[RunRecord, list[MetricSummary]]:
    """Per metric: n, aggregate, standard error, 95% bootstrap CI; errors counted apart."""
    run = store.get_run(run_id)
    out = []
    for m in store.run_metrics(run.run_id):
        labels = m["aggregation"] == "macro_f1"
        cols = store.score_columns(run.run_id, m["metric"], labels=labels)
        arr, n_err = _score_arrays(cols, labels=labels), cols["n_errors"]
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
        pa, pb, ids, cols = paired_arrays(store, ra.run_id, rb.run_id, m["metric"], m["aggregation"])
        paired = stats.compare_paired(
            pa,
            pb,
            aggregation=m["aggregation"],
            higher_is_better=m["higher_is_better"],
            binary=m["binary"],
        )
        worst = stats.regressions(pa.value, pb.value, higher_is_better=m["higher_is_better"], k=k)
        worst_ids = [str(ids[i]) for i in worst]
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
                cols["n_errors"],
                cols["only_in"],
                regressed,
            )
        )
    return ra, rb, out
