"""Judge health, per judge suite run: is this judge evidence at all?

A judge that cannot parse its own output, flips its verdict when the answers swap places, or
gives every answer the same score is not evidence. After each judge run we store, from the
run's own rows: the share of examples whose judge call never gave a valid verdict, pairwise
position consistency, the spread of the scores, kappa with human labels when there are any, and
the judge's result on a small sanity set (reference answers vs deliberately wrong answers).
The gate fails a judge suite whose judge is unhealthy unless the policy says otherwise.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from harness.judging import judge_type
from harness.store import Store
from harness.store.judge_health import get_health, write_health
from harness.store.queries_judges import latest_kappa, mean_valid_score, metric_values
from judges import types as _builtin_types  # noqa: F401  (registers the built-in judge types)

log = logging.getLogger(__name__)
_GENERATION_FAILED = ("generation failed", "baseline generation failed")


def main_metric(metrics: list[str], kind: str) -> str:
    """The score whose spread and agreement matter: the first of the judge type's
    `health_metrics` the run scored (rubric/local: total, pairwise: win), else its first metric."""
    return next((m for m in judge_type(kind).health_metrics if m in metrics), metrics[0])


def compute(
    store: Store, run_id: str, judge: Any, sanity: dict[str, Any] | None = None, kind: str | None = None
) -> dict[str, Any]:
    """The health row of one judge run, from its stored scores (and agreements, if any). `kind`:
    the registered judge type that judged (default: the judge's own kind)."""
    metrics = [m["metric"] for m in store.run_metrics(run_id)]
    metric = main_metric(metrics, kind or judge.kind)
    rows = metric_values(store, run_id, metric)
    judged = [(v, e) for v, e in rows if not (e and e.startswith(_GENERATION_FAILED))]
    failures = sum(1 for v, e in judged if e is not None)
    values = np.asarray([v for v, e in judged if e is None and v is not None], dtype=np.float64)
    consistency = None
    if "consistency" in metrics:
        consistency = mean_valid_score(store, run_id, "consistency")
    kappa = latest_kappa(store, run_id)
    return {
        "run_id": run_id,
        "judge": judge.kind,
        "judge_model": getattr(judge, "identity", None),
        "n": len(judged),
        "parse_failures": failures,
        "parse_failure_rate": failures / len(judged) if judged else 0.0,
        "consistency": consistency,
        "score_sd": float(values.std(ddof=1)) if len(values) > 1 else None,
        "distinct_scores": int(len(np.unique(np.round(values, 6)))) if len(values) else 0,
        "kappa": None if kappa is None else kappa[0],
        "kappa_n": None if kappa is None else kappa[1],
        "sanity": sanity,
        "detail": {"metric": metric},
    }


def record(store: Store, run_id: str, suite: Any, judge: Any) -> dict[str, Any]:
    """Compute and store the run's judge health (the sanity set judged once per judge: cached).
    What health looks at is the judge type's (harness.judging.JudgeType: health_metrics, sanity)."""
    kind = suite.config.judge.effective_type()
    sanity = None
    path = getattr(suite.config.judge, "sanity", None)
    if path:
        old = get_health(store, run_id)
        sanity = (old or {}).get("sanity") or run_sanity(
            store, judge, suite.local_path(path, ("judge", "sanity")), kind
        )
    row = compute(store, run_id, judge, sanity, kind)
    write_health(store, row)
    return row


def update_kappa(store: Store, run_id: str) -> None:
    """Refresh the kappa of a stored health row after human labels arrive."""
    old = get_health(store, run_id)
    if old is None:
        return
    k = latest_kappa(store, run_id)
    if k is not None:
        write_health(store, old | {"kappa": k[0], "kappa_n": k[1]})


def read_sanity(path: Path) -> list[dict[str, str]]:
    from harness.errors import UserError

    if not path.is_file():
        raise UserError("judge sanity set not found", path=path, field="judge.sanity")
    items = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for i, it in enumerate(items, start=1):
        if not all(isinstance(it.get(k), str) for k in ("question", "reference", "wrong")):
            raise UserError(
                "a sanity item needs string fields question, reference and wrong", path=path, line=i
            )
    return items


def run_sanity(store: Store, judge: Any, path: Path, kind: str | None = None) -> dict[str, Any]:
    """Judge the reference answer and a wrong answer of each item: does the judge tell them apart?

    How is the judge type's `sanity` (`kind`, default the judge's own): rubric and local judges
    score both answers (separation = mean gap in the main score); a pairwise judge compares them
    directly (separation = 2 × win rate of the reference - 1).
    """
    return judge_type(kind or judge.kind).sanity(store, judge, read_sanity(path))
