"""Named queries for the judges: cached judgments, judge-human agreements, the rows judge health
reads. The SQL lives here so `judges/` asks the store and never writes a query of its own."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from harness.store.db import Store, one_row

JUDGMENT_COLUMNS = (
    "cache_key", "judge", "judge_model", "spec", "score", "scores", "rationale", "raw", "error", "mode",
    "attempts", "latency_s", "prompt_tokens", "completion_tokens",
)  # fmt: skip
_COLS = ", ".join(JUDGMENT_COLUMNS)


def successful_judgments(store: Store, keys: Iterable[str]) -> list[list[Any]]:
    """Rows (in JUDGMENT_COLUMNS order, `spec`/`scores` decoded) of the error-free judgments among `keys`."""
    keys = list(dict.fromkeys(keys))
    if not keys:
        return []
    rows = store.db.execute(
        f"SELECT {_COLS} FROM judgments WHERE error IS NULL AND cache_key IN (SELECT unnest(?))", [keys]
    ).fetchall()
    out = []
    for r in rows:
        vals = list(r)
        vals[3] = json.loads(vals[3] or "{}")
        vals[5] = json.loads(vals[5]) if vals[5] else None
        out.append(vals)
    return out


def put_judgments(store: Store, rows: Sequence[Sequence[Any]]) -> None:
    """Insert or replace judgments, each a tuple in JUDGMENT_COLUMNS order (already serialized)."""
    if not rows:
        return
    marks = ", ".join("?" * len(JUDGMENT_COLUMNS))
    with store.transaction():
        store.db.executemany(f"INSERT OR REPLACE INTO judgments ({_COLS}) VALUES ({marks})", list(rows))


def metric_values(store: Store, run_id: str, metric: str) -> list[tuple[float | None, str | None]]:
    """(value, error) of every stored score of `metric` in a run."""
    rows = store.db.execute(
        "SELECT value, error FROM scores WHERE run_id = ? AND metric = ?", [run_id, metric]
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def mean_valid_score(store: Store, run_id: str, metric: str) -> float | None:
    """Mean of a run's error-free scores of `metric` (None when there are none)."""
    v = one_row(
        store.db.execute(
            "SELECT avg(value) FROM scores WHERE run_id = ? AND metric = ? AND error IS NULL",
            [run_id, metric],
        )
    )[0]
    return None if v is None else float(v)


def latest_kappa(store: Store, run_id: str) -> tuple[float | None, int] | None:
    """(quadratic kappa, n) of the run's latest judge-human agreement, if any."""
    row = store.db.execute(
        "SELECT kappa_quadratic, n FROM judge_agreements WHERE run_id = ? ORDER BY created_at DESC LIMIT 1",
        [run_id],
    ).fetchone()
    return None if row is None else (row[0], row[1])


def insert_agreement(
    store: Store,
    agreement_id: str,
    run_id: str,
    metric: str,
    labels_path: str,
    labels_hash: str,
    n: int,
    kappa_quadratic: float | None,
    spearman: float | None,
    spearman_p: float | None,
    detail: dict[str, Any],
) -> None:
    """One judge-human agreement row."""
    store.db.execute(
        "INSERT INTO judge_agreements (agreement_id, run_id, metric, labels_path, labels_hash, n,"
        " kappa_quadratic, spearman, spearman_p, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [agreement_id, run_id, metric, labels_path, labels_hash, n, kappa_quadratic, spearman, spearman_p,
         json.dumps(detail)],
    )  # fmt: skip
