"""Named queries for what the Python API (`tunegate.open`, `--json`) and the runner read: the SQL
stays in the store, the callers ask by name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from harness.store.db import Store, one_row

if TYPE_CHECKING:
    import pandas as pd


def model_ids(store: Store, run_ids: Sequence[str]) -> dict[str, str]:
    """run id → model id (the short fingerprint) for each of `run_ids` that is stored."""
    rows = store.db.execute(
        "SELECT run_id, model_id FROM runs WHERE list_contains(?, run_id)", [list(run_ids)]
    ).fetchall()
    return {str(r): str(m) for r, m in rows}


def score_rows(store: Store, suite_id: str, run_id: str) -> list[tuple[Any, ...]]:
    """Every score of a run in suite order: (example_id, metric, value, weight, error, detail JSON)."""
    return store.db.execute(
        "SELECT s.example_id, s.metric, s.value, s.weight, s.error, s.detail FROM scores s"
        " LEFT JOIN examples e ON e.suite_id = ? AND e.example_id = s.example_id"
        " WHERE s.run_id = ? ORDER BY e.position, s.example_id, s.metric",
        [suite_id, run_id],
    ).fetchall()


def example_output_rows(store: Store, suite_id: str, run_id: str) -> list[tuple[Any, ...]]:
    """Per example of a run in suite order: (example_id, position, prompt, reference JSON, output,
    error, cached)."""
    return store.db.execute(
        "SELECT re.example_id, e.position, g.prompt, e.reference, g.output, re.error, re.cached"
        " FROM run_examples re LEFT JOIN generations g USING (cache_key)"
        " LEFT JOIN examples e ON e.suite_id = ? AND e.example_id = re.example_id"
        " WHERE re.run_id = ? ORDER BY e.position, re.example_id",
        [suite_id, run_id],
    ).fetchall()


def cached_count(store: Store, run_id: str) -> int:
    """Examples of a run served from the generation cache (no model call)."""
    return int(
        one_row(store.db.execute("SELECT count(*) FROM run_examples WHERE run_id = ? AND cached", [run_id]))[
            0
        ]
    )


def user_query(store: Store, query: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
    """Any SQL a user writes over the store's tables (`Results.sql`), as a DataFrame."""
    return store.db.execute(query, list(params or [])).df()
