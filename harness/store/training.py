"""Training runs and their step-wise logs in the store (tables from migration m002_training).

Functions over a `Store` rather than methods on it, so the training layer owns its SQL.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any

from harness.errors import UserError
from harness.secrets import scrub
from harness.store.db import Store, like_prefix
from harness.store.liveness import is_dead, utc_now


@dataclass(frozen=True)
class TrainingRun:
    """One `tunegate train` invocation: what was trained from what, and how it ended."""

    training_run_id: str
    kind: str
    name: str | None
    status: str
    parent_model_id: str
    candidate_model_id: str | None
    adapter_path: str | None
    config: dict[str, Any]
    dataset_hash: str
    seed: int | None
    summary: dict[str, Any]
    error: str | None


def start_training_run(
    store: Store,
    training_run_id: str,
    *,
    kind: str,
    name: str | None,
    parent_model_id: str,
    config: dict[str, Any],
    dataset_hash: str,
    dataset: dict[str, Any],
    seed: int,
    versions: dict[str, str],
    git_sha: str | None,
    host: str,
) -> None:
    store.require_writable()
    store.db.execute(
        "INSERT INTO training_runs (training_run_id, kind, name, status, parent_model_id, config,"
        " dataset_hash, dataset, seed, versions, git_sha, host, started_at, pid, heartbeat_at)"
        " VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, current_timestamp, ?, ?)",
        [
            training_run_id,
            kind,
            name,
            parent_model_id,
            _j(config),
            dataset_hash,
            _j(dataset),
            seed,
            _j(versions),
            git_sha,
            host,
            os.getpid(),
            utc_now(),
        ],
    )


def log_training_step(store: Store, training_run_id: str, seq: int, logs: dict[str, Any], step: int) -> None:
    """One trainer log event (train, eval or the end-of-training summary) as one row."""
    if any(k.startswith("eval_") for k in logs):
        split, prefix = "eval", "eval_"
    elif "train_runtime" in logs:
        split, prefix = "summary", ""
    else:
        split, prefix = "train", ""
    loss = logs.get("eval_loss") if split == "eval" else logs.get("train_loss", logs.get("loss"))
    store.db.execute(
        "INSERT INTO training_logs (training_run_id, seq, step, epoch, split, loss, learning_rate,"
        " grad_norm, reward_margin, reward_accuracy, metrics) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            training_run_id,
            seq,
            step,
            _num(logs.get("epoch")),
            split,
            _num(loss),
            _num(logs.get("learning_rate")),
            _num(logs.get("grad_norm")),
            _num(logs.get(f"{prefix}rewards/margins")),
            _num(logs.get(f"{prefix}rewards/accuracies")),
            _j({k: v for k, v in logs.items() if _num(v) is not None}),
        ],
    )
    store.db.execute(  # the owner is alive (m004)
        "UPDATE training_runs SET heartbeat_at = ? WHERE training_run_id = ?", [utc_now(), training_run_id]
    )


def finish_training_run(
    store: Store,
    training_run_id: str,
    status: str,
    *,
    summary: dict[str, Any] | None = None,
    candidate_model_id: str | None = None,
    adapter_path: str | None = None,
    error: str | None = None,
) -> None:
    store.db.execute(
        "UPDATE training_runs SET status = ?, summary = ?, candidate_model_id = ?, adapter_path = ?,"
        " error = ?, ended_at = current_timestamp WHERE training_run_id = ?",
        [status, _j(summary or {}), candidate_model_id, adapter_path, scrub(error), training_run_id],
    )


def mark_dead_training_runs(store: Store) -> list[str]:
    """Training runs left `running` by a process that is gone (kill -9, OOM, a lost machine) are
    marked failed, saying so; a published adapter of one is still completed by `register_cached`."""
    rows = store.db.execute(
        "SELECT training_run_id, host, pid, heartbeat_at FROM training_runs WHERE status = 'running'"
    ).fetchall()
    dead = [r for r in rows if is_dead("running", r[1], r[2], r[3])]
    for run_id, host, pid, _ in dead:
        finish_training_run(
            store,
            run_id,
            "failed",
            error=f"dead: the training process (PID {pid} on {host}) ended without finishing",
        )
    return [r[0] for r in dead]


def get_training_run(store: Store, ref: str) -> TrainingRun:
    """A training run by id or unique id prefix."""
    rows = store.db.execute(
        "SELECT training_run_id, kind, name, status, parent_model_id, candidate_model_id, adapter_path,"
        " config, dataset_hash, seed, summary, error FROM training_runs"
        " WHERE training_run_id = ? OR training_run_id LIKE ? ESCAPE '\\' ORDER BY training_run_id",
        [ref, like_prefix(ref)],
    ).fetchall()
    rows = [r for r in rows if r[0] == ref] or rows
    if len(rows) != 1:
        raise UserError(f"{'unknown' if not rows else 'ambiguous'} training run id '{ref}' in {store.path}")
    r = rows[0]
    config, summary = json.loads(r[7] or "{}"), json.loads(r[10] or "{}")
    return TrainingRun(r[0], r[1], r[2], r[3], r[4], r[5], r[6], config, r[8], r[9], summary, r[11])


def training_logs(store: Store, training_run_id: str, split: str | None = None) -> list[dict[str, Any]]:
    """Logged rows in order; `split` filters to train, eval or summary."""
    cur = store.db.execute(
        "SELECT seq, step, epoch, split, loss, learning_rate, grad_norm, reward_margin, reward_accuracy"
        " FROM training_logs WHERE training_run_id = ? AND (? IS NULL OR split = ?) ORDER BY seq",
        [training_run_id, split, split],
    )
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row)) for row in cur.fetchall()]


def lineage(store: Store, model_id: str) -> list[dict[str, Any]]:
    """The model, then its parents up to the root: each with the training run that produced it."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    current: str | None = model_id
    while current and current not in seen:
        seen.add(current)
        row = store.db.execute(
            "SELECT m.model_id, m.spec, m.base_model_id, m.adapter_path, t.training_run_id, t.kind,"
            " t.parent_model_id FROM models m LEFT JOIN training_runs t ON t.candidate_model_id = m.model_id"
            " WHERE m.model_id = ? ORDER BY t.started_at DESC LIMIT 1",
            [current],
        ).fetchone()
        if row is None:
            break
        keys = ("model_id", "spec", "base_model_id", "adapter_path", "training_run_id", "kind", "parent")
        out.append(dict(zip(keys, row)))
        # A trained candidate's parent is what it was trained from (an SFT candidate for DPO);
        # otherwise follow the adapter's base weights.
        current = row[6] or row[2]
    return out


def _j(v: Any) -> str | None:
    return None if v is None else scrub(json.dumps(v, ensure_ascii=False, sort_keys=True, default=str))


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if math.isfinite(v) else None
