"""How well a judge agrees with human labels on the same examples.

Cohen's kappa with quadratic weights (on scores rounded to whole points: disagreeing by two
points costs four times disagreeing by one) and Spearman's rank correlation. Results are
stored in `judge_agreements` beside the run they describe.
"""

from __future__ import annotations

import csv
import hashlib
import math
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import UserError
from harness.store import Store
from harness.store.queries_judges import insert_agreement


@dataclass(frozen=True)
class Agreement:
    n: int
    kappa_quadratic: float
    spearman: float
    spearman_p: float
    judge_mean: float
    human_mean: float
    unmatched_labels: int
    """Labelled examples the run has no judge score for (errors or missing)."""


def quadratic_kappa(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Cohen's kappa with quadratic weights over the integer categories min..max of both raters."""
    x = np.rint(np.asarray(a, dtype=float)).astype(int)
    y = np.rint(np.asarray(b, dtype=float)).astype(int)
    if len(x) != len(y) or len(x) == 0:
        raise ValueError("kappa needs two equally long, non-empty sequences")
    lo = min(x.min(), y.min())
    k = max(x.max(), y.max()) - lo + 1
    if k == 1:
        return math.nan  # one category only: agreement is undefined, not perfect
    observed = np.zeros((k, k))
    np.add.at(observed, (x - lo, y - lo), 1)
    expected = np.outer(observed.sum(1), observed.sum(0)) / len(x)
    i, j = np.indices((k, k))
    w = (i - j) ** 2 / (k - 1) ** 2
    denom = (w * expected).sum()
    return math.nan if denom == 0 else float(1 - (w * observed).sum() / denom)


def agreement(judge: dict[str, float], human: dict[str, float]) -> Agreement:
    """Agreement on the examples both sides scored."""
    ids = [i for i in human if i in judge]
    if len(ids) < 2:
        raise UserError(
            f"only {len(ids)} labelled example(s) have a judge score; agreement needs at least 2 "
            "(do the label ids match the suite's example ids?)"
        )
    from scipy.stats import spearmanr

    a = np.array([judge[i] for i in ids], dtype=float)
    b = np.array([human[i] for i in ids], dtype=float)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        rho, p = math.nan, math.nan  # a constant side has no ranks to correlate
    else:
        res = spearmanr(a, b)
        rho, p = float(res.statistic), float(res.pvalue)
    return Agreement(
        len(ids), quadratic_kappa(a, b), rho, p, float(a.mean()), float(b.mean()), len(human) - len(ids)
    )


def read_labels(path: Path, id_field: str = "id", label_field: str = "label") -> dict[str, float]:
    """example id → human score, from JSONL or CSV."""
    if not path.is_file():
        raise UserError("labels file not found", path=path)
    out: dict[str, float] = {}
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            rows = [(n, r) for n, r in enumerate(csv.DictReader(f), start=2)]
    else:
        from suites.base import read_jsonl

        rows = read_jsonl(path)
    for n, rec in rows:
        for name in (id_field, label_field):
            if rec.get(name) in (None, ""):
                raise UserError("record lacks the field", path=path, line=n, field=name)
        try:
            value = float(rec[label_field])
        except (TypeError, ValueError):
            raise UserError("label is not a number", path=path, line=n, field=label_field) from None
        eid = str(rec[id_field])
        if eid in out:
            raise UserError(f"duplicate example id '{eid}'", path=path, line=n, field=id_field)
        out[eid] = value
    if not out:
        raise UserError("the labels file is empty", path=path)
    return out


def judge_scores(store: Store, run_id: str, metric: str) -> dict[str, float]:
    cols = store.score_columns(run_id, metric)
    if not len(cols["example_id"]) and not cols["n_errors"]:
        have = ", ".join(m["metric"] for m in store.run_metrics(run_id))
        raise UserError(f"run {run_id} has no metric '{metric}' (it has: {have})", field="metric")
    return {str(i): float(v) for i, v in zip(cols["example_id"], cols["value"])}


def store_agreement(store: Store, run_id: str, metric: str, labels: Path, result: Agreement) -> str:
    agreement_id = "a-" + secrets.token_hex(4)
    insert_agreement(
        store,
        agreement_id,
        run_id,
        metric,
        str(labels),
        hashlib.sha256(labels.read_bytes()).hexdigest(),
        result.n,
        _finite(result.kappa_quadratic),
        _finite(result.spearman),
        _finite(result.spearman_p),
        {k: _finite(v) for k, v in asdict(result).items()},
    )
    return agreement_id


def _finite(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v
