"""Contamination scans in the store: written by `trainers.contamination`, read by show, compare,
the gate and the report (which must not import `trainers/`)."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from harness.store.db import Store, one_row


def write_scan(store: Store, scan: Any, train_hash: str, training_run_id: str | None = None) -> str:
    """Store one scan (a `trainers.contamination.Scan`) and its matches in one transaction."""
    scan_id = "c-" + uuid.uuid4().hex[:12]
    rows = [
        (scan_id, m.suite_id, m.example_id, m.train_file, m.record, m.method, float(m.score), m.field)
        for m in scan.matches
    ]
    with store.transaction():
        store.db.execute(
            "INSERT INTO contamination_scans (scan_id, train_files, train_hash, training_run_id, suites,"
            " params, n_records, seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                scan_id,
                json.dumps(scan.train_files),
                train_hash,
                training_run_id,
                json.dumps(scan.suites),
                json.dumps(scan.params),
                scan.n_records,
                scan.seconds,
            ],
        )
        if rows:
            store.db.executemany("INSERT INTO contamination VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return scan_id


def has_scan(store: Store, suite_id: str) -> bool:
    """Whether any stored scan covered this suite (by suite id: name + content hash)."""
    for (suites,) in store.db.execute("SELECT suites FROM contamination_scans").fetchall():
        if any(s.get("suite_id") == suite_id for s in json.loads(suites or "[]")):
            return True
    return False


def contaminated(store: Store, suite_id: str) -> dict[str, list[dict[str, Any]]]:
    """example id → its matches (method, score, file, record, field) over every stored scan."""
    rows = store.db.execute(
        "SELECT example_id, method, max(score), train_file, record, any_value(field) FROM contamination"
        " WHERE suite_id = ? GROUP BY example_id, method, train_file, record ORDER BY example_id, method",
        [suite_id],
    ).fetchall()
    out: dict[str, list[dict[str, Any]]] = {}
    for ex, method, score, file, record, field in rows:
        out.setdefault(ex, []).append(
            {"method": method, "score": score, "file": file, "record": record, "field": field}
        )
    return out


def contaminated_ids(store: Store, suite_id: str) -> set[str]:
    return {
        r[0]
        for r in store.db.execute(
            "SELECT DISTINCT example_id FROM contamination WHERE suite_id = ?", [suite_id]
        ).fetchall()
    }


def files_hash(paths: list[str]) -> str:
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            h.update(p.encode() + b"\0" + hashlib.sha256(f.read()).digest())
    return h.hexdigest()


def summary_line(store: Store, suite_id: str, suite_name: str) -> str | None:
    """One line for show/compare: how many examples of this suite a stored scan found in training data."""
    if not has_scan(store, suite_id):
        return None
    rows = store.db.execute(
        "SELECT method, count(DISTINCT example_id) FROM contamination WHERE suite_id = ? GROUP BY method",
        [suite_id],
    ).fetchall()
    n = one_row(store.db.execute("SELECT count(*) FROM examples WHERE suite_id = ?", [suite_id]))[0]
    bad = len(contaminated_ids(store, suite_id))
    if not bad:
        return f"contamination: none of the {n} {suite_name} examples found in the scanned training data"
    by = ", ".join(f"{m} {c}" for m, c in sorted(rows))
    return (
        f"contamination: {bad} of {n} {suite_name} examples found in training data ({by}); "
        "gate rules can use `subset: clean`"
    )
