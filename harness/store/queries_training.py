"""Named queries for the trainers and run bookkeeping outside `harness/store/training.py`: the
SQL lives here so `trainers/` and `suites/` ask the store and write no query of their own."""

from __future__ import annotations

import json
from typing import Any

from harness.store.db import Store


def training_run_status(store: Store, training_run_id: str) -> str | None:
    """The stored status of a training run; None when the store does not know it."""
    row = store.db.execute(
        "SELECT status FROM training_runs WHERE training_run_id = ?", [training_run_id]
    ).fetchone()
    return None if row is None else str(row[0])


def logged_training_seqs(store: Store, training_run_id: str) -> set[int]:
    """Sequence numbers of the training log rows already stored for a run."""
    rows = store.db.execute(
        "SELECT seq FROM training_logs WHERE training_run_id = ?", [training_run_id]
    ).fetchall()
    return {int(r[0]) for r in rows}


def adapter_model_spec(store: Store, ref: str) -> str | None:
    """Spec of the adapter model whose model id or training run id is `ref` (None if none)."""
    row = store.db.execute(
        "SELECT m.spec FROM models m LEFT JOIN training_runs t ON t.candidate_model_id = m.model_id"
        " WHERE m.adapter_path IS NOT NULL AND (m.model_id = ? OR t.training_run_id = ?)",
        [ref, ref],
    ).fetchone()
    return None if row is None else str(row[0])


def merge_run_config(store: Store, run_id: str, patch: dict[str, Any]) -> None:
    """JSON-merge `patch` into a run's stored config (e.g. lm-eval's aggregates beside it)."""
    store.db.execute(
        "UPDATE runs SET config = json_merge_patch(config, ?::JSON) WHERE run_id = ?",
        [json.dumps(patch), run_id],
    )
