"""Load runs in the store (`tunegate load`, migration m007): the run, its levels and every
request, written per batch in a transaction; read by the CLI, the gate's load rules and the
report's latency section."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import UserError
from harness.secrets import scrub
from harness.store.db import Store, like_prefix, one_row
from harness.store.liveness import is_dead, this_host, utc_now

SUMMARY_COLUMNS = (
    "n_requests", "n_errors", "error_rate", "duration_s", "requests_per_s", "output_tokens_per_s",
    "e2e_p50", "e2e_p90", "e2e_p95", "e2e_p99", "ttft_p50", "ttft_p90", "ttft_p95", "ttft_p99",
)  # fmt: skip
REQUEST_COLUMNS = (
    "seq", "suite_id", "example_id", "scheduled_s", "sent_s", "e2e_s", "ttft_s", "itl_s",
    "prompt_tokens", "output_tokens", "tokens_from", "status", "error", "failed_after_s",
)  # fmt: skip


@dataclass(frozen=True)
class LoadRun:
    """One stored load run."""

    load_run_id: str
    model_id: str
    model_spec: str
    suites: list[dict[str, Any]]
    status: str
    config: dict[str, Any]
    seed: int | None
    host: str | None
    pid: int | None
    heartbeat_at: Any
    started_at: Any
    ended_at: Any
    error: str | None

    @property
    def shown_status(self) -> str:
        if is_dead(self.status, self.host, self.pid, self.heartbeat_at):
            return f"dead (resume with tunegate load --resume {self.load_run_id})"
        return self.status


def is_load_ref(ref: str) -> bool:
    """Load run ids start with `l-` (quality runs with `r-`)."""
    return ref.startswith("l-")


def create_load_run(
    store: Store,
    load_run_id: str,
    model_id: str,
    suites: list[dict[str, Any]],
    *,
    config: dict[str, Any],
    seed: int,
    versions: dict[str, str],
    git_sha: str | None,
) -> None:
    with store.transaction():
        store.db.execute(
            "INSERT INTO load_runs (load_run_id, model_id, suites, status, config, seed, versions, git_sha,"
            " host, pid, heartbeat_at, started_at) VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?,"
            " current_timestamp)",
            [
                load_run_id, model_id, json.dumps(suites), scrub(json.dumps(config, sort_keys=True)), seed,
                json.dumps(versions), git_sha, this_host(), os.getpid(), utc_now(),
            ],
        )  # fmt: skip


def reopen_load_run(store: Store, load_run_id: str) -> None:
    store.require_writable()
    store.db.execute(
        "UPDATE load_runs SET status = 'running', error = NULL, ended_at = NULL, host = ?, pid = ?,"
        " heartbeat_at = ? WHERE load_run_id = ?",
        [this_host(), os.getpid(), utc_now(), load_run_id],
    )


def mark_load_run(store: Store, load_run_id: str, status: str, error: str | None = None) -> None:
    store.require_writable()
    store.db.execute(
        "UPDATE load_runs SET status = ?, error = ?, ended_at = current_timestamp WHERE load_run_id = ?",
        [status, scrub(error), load_run_id],
    )


def start_level(store: Store, load_run_id: str, level: int, mode: str, value: float) -> None:
    """(Re)start a level: rows of an earlier, unfinished try of it go in the same transaction,
    so a level is measured in one piece and nothing is counted twice."""
    with store.transaction():
        store.db.execute(
            "DELETE FROM load_requests WHERE load_run_id = ? AND level = ?", [load_run_id, level]
        )
        store.db.execute("DELETE FROM load_levels WHERE load_run_id = ? AND level = ?", [load_run_id, level])
        store.db.execute(
            "INSERT INTO load_levels (load_run_id, level, mode, value, status, started_at)"
            " VALUES (?, ?, ?, ?, 'running', current_timestamp)",
            [load_run_id, level, mode, value],
        )


def write_requests(store: Store, load_run_id: str, level: int, rows: Sequence[tuple[Any, ...]]) -> None:
    """One transaction: a batch of finished requests (tuples in REQUEST_COLUMNS order)."""
    if not rows:
        return
    cols = ", ".join(("load_run_id", "level", *REQUEST_COLUMNS))
    one = "(" + ", ".join("?" * (2 + len(REQUEST_COLUMNS))) + ")"
    with store.transaction():
        for start in range(0, len(rows), 256):
            part = rows[start : start + 256]
            params: list[Any] = []
            err = REQUEST_COLUMNS.index("error")
            for r in part:
                params += [load_run_id, level, *r[:err], scrub(r[err]), *r[err + 1 :]]
            store.db.execute(
                f"INSERT INTO load_requests ({cols}) VALUES {', '.join([one] * len(part))}", params
            )
        store.db.execute(
            "UPDATE load_runs SET heartbeat_at = ? WHERE load_run_id = ?", [utc_now(), load_run_id]
        )


def finish_level(store: Store, load_run_id: str, level: int, summary: dict[str, Any]) -> None:
    flat = {
        "n_requests": summary["n_requests"],
        "n_errors": summary["n_errors"],
        "error_rate": summary["error_rate"],
        "duration_s": summary["duration_s"],
        "requests_per_s": summary["requests_per_s"],
        "output_tokens_per_s": summary["output_tokens_per_s"],
        **{f"e2e_{k}": v for k, v in summary["e2e"].items()},
        **{f"ttft_{k}": v for k, v in summary["ttft"].items()},
    }
    sets = ", ".join(f"{c} = ?" for c in SUMMARY_COLUMNS)
    with store.transaction():
        store.db.execute(
            f"UPDATE load_levels SET {sets}, summary = ?, status = 'completed', ended_at = current_timestamp"
            " WHERE load_run_id = ? AND level = ?",
            [*(flat[c] for c in SUMMARY_COLUMNS), json.dumps(summary), load_run_id, level],
        )


def request_columns(store: Store, load_run_id: str, level: int) -> dict[str, Any]:
    """A level's stored requests as columns (lists), in send order."""
    cur = store.db.execute(
        f"SELECT {', '.join(REQUEST_COLUMNS)} FROM load_requests WHERE load_run_id = ? AND level = ?"
        " ORDER BY seq",
        [load_run_id, level],
    )
    rows = cur.fetchall()
    return {c: [r[i] for r in rows] for i, c in enumerate(REQUEST_COLUMNS)}


def levels(store: Store, load_run_id: str) -> list[dict[str, Any]]:
    """Every level of a load run, in sweep order, with its stored summary."""
    cur = store.db.execute(
        f"SELECT level, mode, value, status, {', '.join(SUMMARY_COLUMNS)}, summary FROM load_levels"
        " WHERE load_run_id = ? ORDER BY level",
        [load_run_id],
    )
    cols = [d[0] for d in cur.description]
    out = []
    for row in cur.fetchall():
        d = dict(zip(cols, row))
        d["summary"] = json.loads(d["summary"]) if d["summary"] else None
        out.append(d)
    return out


def get_load_run(store: Store, ref: str) -> LoadRun:
    """A load run by id or unique id prefix."""
    rows = store.db.execute(
        "SELECT l.load_run_id, l.model_id, m.spec, l.suites, l.status, l.config, l.seed, l.host, l.pid,"
        " l.heartbeat_at, l.started_at, l.ended_at, l.error FROM load_runs l JOIN models m USING (model_id)"
        " WHERE l.load_run_id = ? OR l.load_run_id LIKE ? ESCAPE '\\' ORDER BY l.load_run_id",
        [ref, like_prefix(ref)],
    ).fetchall()
    exact = [r for r in rows if r[0] == ref]
    rows = exact or rows
    if not rows:
        raise UserError(f"unknown load run id '{ref}' in {store.path} (see `tunegate load --list`)")
    if len(rows) > 1:
        raise UserError(f"load run id prefix '{ref}' is ambiguous: {', '.join(r[0] for r in rows[:5])}")
    r = rows[0]
    return LoadRun(r[0], r[1], r[2], json.loads(r[3]), r[4], json.loads(r[5] or "{}"), r[6], r[7], r[8],
                   r[9], r[10], r[11], r[12])  # fmt: skip


def list_load_runs(store: Store, limit: int = 50) -> list[LoadRun]:
    ids = store.db.execute(
        "SELECT load_run_id FROM load_runs ORDER BY started_at DESC LIMIT ?", [limit]
    ).fetchall()
    return [get_load_run(store, r[0]) for r in ids]


def latest_with_level(store: Store, model_id: str, mode: str, value: float) -> str | None:
    """The model's latest completed load run with a completed level of this mode and value."""
    row = store.db.execute(
        "SELECT l.load_run_id FROM load_runs l JOIN load_levels v USING (load_run_id)"
        " WHERE l.model_id = ? AND l.status = 'completed' AND v.status = 'completed' AND v.mode = ?"
        " AND abs(v.value - ?) < 1e-9 ORDER BY l.started_at DESC LIMIT 1",
        [model_id, mode, value],
    ).fetchone()
    return row[0] if row else None


def model_load_runs(store: Store, model_ids: Sequence[str]) -> list[str]:
    """Completed load runs of these models, newest first."""
    if not model_ids:
        return []
    rows = store.db.execute(
        "SELECT load_run_id FROM load_runs WHERE status = 'completed' AND model_id IN (SELECT unnest(?))"
        " ORDER BY started_at DESC",
        [list(model_ids)],
    ).fetchall()
    return [r[0] for r in rows]


def count_requests(store: Store, load_run_id: str) -> int:
    return int(
        one_row(store.db.execute("SELECT count(*) FROM load_requests WHERE load_run_id = ?", [load_run_id]))[
            0
        ]
    )


def quality_latency(store: Store, run_id: str) -> dict[str, Any] | None:
    """What a quality run's generations took (`generations.latency_s`, cache hits left out), with
    what it is: wall time per request while evaluating, not a load measurement."""
    row = one_row(
        store.db.execute(
            "SELECT count(g.latency_s), avg(g.latency_s), quantile_cont(g.latency_s, 0.95)"
            " FROM run_examples e JOIN generations g USING (cache_key)"
            " WHERE e.run_id = ? AND NOT coalesce(e.cached, false) AND e.error IS NULL AND g.latency_s > 0",
            [run_id],
        )
    )
    if not row[0]:
        return None
    return {
        "n": int(row[0]),
        "mean_s": float(row[1]),
        "p95_s": float(row[2]),
        "what": "wall time per request while evaluating (a local batch's time shared by its requests; "
        "an endpoint's retries included): not a load measurement, see `tunegate load`",
    }
