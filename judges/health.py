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

from harness.store import Store
from harness.store.judge_health import SANITY_MIN_GAP, get_health, write_health
from harness.store.queries_judges import latest_kappa, mean_valid_score, metric_values
from judges.base import Subject

log = logging.getLogger(__name__)
_GENERATION_FAILED = ("generation failed", "baseline generation failed")


def main_metric(metrics: list[str], kind: str) -> str:
    """The score whose spread and agreement matter: total (rubric/local), win (pairwise)."""
    for m in ("win", "total") if kind == "pairwise" else ("total",):
        if m in metrics:
            return m
    return metrics[0]


def compute(store: Store, run_id: str, judge: Any, sanity: dict[str, Any] | None = None) -> dict[str, Any]:
    """The health row of one judge run, from its stored scores (and agreements, if any)."""
    metrics = [m["metric"] for m in store.run_metrics(run_id)]
    metric = main_metric(metrics, judge.kind)
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
    """Compute and store the run's judge health (the sanity set judged once per judge: cached)."""
    sanity = None
    path = getattr(suite.config.judge, "sanity", None)
    if path:
        old = get_health(store, run_id)
        sanity = (old or {}).get("sanity") or run_sanity(
            store, judge, suite.local_path(path, ("judge", "sanity"))
        )
    row = compute(store, run_id, judge, sanity)
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


def run_sanity(store: Store, judge: Any, path: Path) -> dict[str, Any]:
    """Judge the reference answer and a wrong answer of each item: does the judge tell them apart?

    Rubric and local judges score both answers (separation = mean gap in the main score);
    a pairwise judge compares them directly (separation = 2 × win rate of the reference - 1).
    """
    items = read_sanity(path)
    ref = lambda it: it["reference"]  # noqa: E731
    if judge.kind == "pairwise":
        subs = [
            Subject(f"sanity-{i}", it["question"], it["reference"], ref(it), it["wrong"])
            for i, it in enumerate(items)
        ]
        verdicts = judge.judge(store, subs)
        wins = [v.scores["win"] for v in verdicts if v.scores is not None]
        if not wins:
            return {"n": len(items), "errors": len(items), "separation": None}
        rate = float(np.mean(wins))
        return {"n": len(items), "errors": len(items) - len(wins), "reference_win_rate": rate,
                "separation": 2 * rate - 1,
                "tells_apart": bool(rate > 0.5 and 2 * rate - 1 >= 2 * SANITY_MIN_GAP)}  # fmt: skip
    subs = [
        Subject(f"sanity-{i}-ref", it["question"], it["reference"], ref(it), None)
        for i, it in enumerate(items)
    ]
    subs += [
        Subject(f"sanity-{i}-wrong", it["question"], it["wrong"], ref(it), None) for i, it in enumerate(items)
    ]
    verdicts = judge.judge(store, subs)
    metric = "total" if any(v.scores and "total" in v.scores for v in verdicts) else None
    pairs = []
    for i in range(len(items)):
        a, b = verdicts[i], verdicts[len(items) + i]
        if a.scores is None or b.scores is None:
            continue
        key = metric or next(iter(a.scores))
        pairs.append((float(a.scores[key]), float(b.scores[key])))
    if not pairs:
        return {"n": len(items), "errors": len(items), "separation": None}
    good, bad = np.asarray(pairs).T
    # "tells apart": most references above their wrong answer, by at least a tenth of the scale
    # (harness.store.judge_health.sanity_problem holds the gate's default to the same)
    scale = float(sum(c.max_points for c in getattr(judge, "criteria", []))) or 1.0
    sep, higher = float(good.mean() - bad.mean()), int(np.sum(good > bad))
    return {
        "n": len(items),
        "errors": len(items) - len(pairs),
        "reference_mean": float(good.mean()),
        "wrong_mean": float(bad.mean()),
        "separation": sep,
        "reference_higher": higher,
        "scale": scale,
        "tells_apart": bool(higher > len(pairs) / 2 and sep >= SANITY_MIN_GAP * scale),
    }
