"""Named queries for what the report, the review page, the leaderboard and the contamination
check read and write: the SQL stays in the store, the callers ask by name."""

from __future__ import annotations

import json
from typing import Any

from harness.store.db import Store, one_row

# -- the report -----------------------------------------------------------------------------------


def example_rows(store: Store, run_id: str) -> list[tuple[Any, ...]]:
    """Per example of a run, in suite order: (example_id, position, prompt, output, error,
    reference JSON, input JSON); the error is the example's own or its generation's."""
    return store.db.execute(
        "SELECT re.example_id, e.position, g.prompt, g.output, coalesce(re.error, g.error),"
        " e.reference, e.input FROM run_examples re JOIN runs r USING (run_id)"
        " LEFT JOIN generations g USING (cache_key)"
        " LEFT JOIN examples e ON e.suite_id = r.suite_id AND e.example_id = re.example_id"
        " WHERE re.run_id = ? ORDER BY e.position, re.example_id",
        [run_id],
    ).fetchall()


def score_notes(store: Store, run_id: str) -> list[tuple[Any, ...]]:
    """Every score of a run: (example_id, metric, value, error, rationale or reason)."""
    return store.db.execute(
        "SELECT example_id, metric, value, error, coalesce(json_extract_string(detail, '$.rationale'),"
        " json_extract_string(detail, '$.reason')) FROM scores WHERE run_id = ?",
        [run_id],
    ).fetchall()


def model_row(store: Store, model_id: str) -> tuple[Any, ...]:
    """(model_id, spec, kind, fingerprint, base_model_id, adapter_path, created_at) of a stored model."""
    return one_row(
        store.db.execute(
            "SELECT model_id, spec, kind, fingerprint, base_model_id, adapter_path, created_at FROM models"
            " WHERE model_id = ?",
            [model_id],
        )
    )


def run_provenance(store: Store, run_id: str) -> tuple[str | None, str | None, dict[str, Any]]:
    """(host, git sha, package versions) a run was made with."""
    host, git_sha, versions = one_row(
        store.db.execute("SELECT host, git_sha, versions FROM runs WHERE run_id = ?", [run_id])
    )
    return host, git_sha, json.loads(versions or "{}")


def has_training_logs(store: Store, training_run_id: str) -> bool:
    row = store.db.execute(
        "SELECT 1 FROM training_logs WHERE training_run_id = ? LIMIT 1", [training_run_id]
    ).fetchone()
    return row is not None


# -- the review page ------------------------------------------------------------------------------


def run_example_ids(store: Store, run_id: str) -> list[str]:
    """A run's example ids in suite order."""
    return [
        r[0]
        for r in store.db.execute(
            "SELECT re.example_id FROM run_examples re JOIN runs r USING (run_id) LEFT JOIN examples e"
            " ON e.suite_id = r.suite_id AND e.example_id = re.example_id WHERE re.run_id = ?"
            " ORDER BY e.position, re.example_id",
            [run_id],
        ).fetchall()
    ]


def insert_review_page(
    store: Store,
    review_id: str,
    run_ids: list[str],
    criteria: list[dict[str, Any]],
    manifest: dict[str, list[str]],
    seed: int,
) -> None:
    """A review page's manifest (which run each shown slot holds), so import can un-shuffle."""
    with store.transaction():
        store.db.execute(
            "INSERT INTO review_pages (review_id, runs, criteria, manifest, seed) VALUES (?, ?, ?, ?, ?)",
            [review_id, json.dumps(run_ids), json.dumps(criteria), json.dumps(manifest), seed],
        )


def review_page(store: Store, review_id: str) -> tuple[dict[str, list[str]], list[dict[str, Any]]] | None:
    """(manifest, criteria) of a stored review page; None when this store did not make it."""
    row = store.db.execute(
        "SELECT manifest, criteria FROM review_pages WHERE review_id = ?", [review_id]
    ).fetchone()
    return None if row is None else (json.loads(row[0]), json.loads(row[1]))


def insert_review_labels(store: Store, rows: list[tuple[Any, ...]]) -> None:
    """Labels as (review_id, run_id, example_id, reviewer, criterion, score, note, shown_position,
    labelled_at), in one transaction (a label given again replaces the old one)."""
    with store.transaction():
        store.db.executemany(
            "INSERT OR REPLACE INTO review_labels (review_id, run_id, example_id, reviewer, criterion, score,"
            " note, shown_position, labelled_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


def human_scores(store: Store, run_id: str) -> dict[str, float]:
    """Example id → the mean human label over reviewers and criteria."""
    return dict(
        store.db.execute(
            "SELECT example_id, avg(score) FROM review_labels WHERE run_id = ? GROUP BY example_id", [run_id]
        ).fetchall()
    )


def judge_runs_of_model(store: Store, model_id: str) -> list[str]:
    """Completed judge-suite runs over a model's answers."""
    return [
        r[0]
        for r in store.db.execute(
            "SELECT r.run_id FROM runs r JOIN suites s USING (suite_id)"
            " WHERE r.model_id = ? AND s.kind = 'judge' AND r.status = 'completed'",
            [model_id],
        ).fetchall()
    ]


# -- contamination after training -----------------------------------------------------------------


def model_id_by_spec(store: Store, spec: str) -> str | None:
    row = store.db.execute("SELECT model_id FROM models WHERE spec = ? LIMIT 1", [spec]).fetchone()
    return None if row is None else str(row[0])


def training_dataset(store: Store, training_run_id: str) -> dict[str, Any] | None:
    """The `dataset` record of a training run (its data files by split); None for no such run."""
    row = store.db.execute(
        "SELECT dataset FROM training_runs WHERE training_run_id = ?", [training_run_id]
    ).fetchone()
    return None if row is None else json.loads(row[0] or "{}")
