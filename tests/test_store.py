"""The DuckDB store: migrations, batch transactions, error rows, run lookup."""

from __future__ import annotations

import duckdb
import pytest

from harness.errors import UserError
from harness.store import GenerationRow, ScoreRow, Store
from harness.store.migrations import MIGRATIONS


def test_migrations_apply_once_and_are_numbered(tmp_path):
    path = tmp_path / "s.duckdb"
    with Store(path) as s:
        assert s.schema_version() == len(MIGRATIONS)
    with Store(path) as s:  # reopening applies nothing twice
        rows = s.db.execute("SELECT version, name FROM schema_version ORDER BY version").fetchall()
    assert [r[0] for r in rows] == list(range(1, len(MIGRATIONS) + 1))
    assert all(name.startswith(f"m{v:03d}_") for v, name in rows)


def _setup_run(s: Store, run_id: str = "r-1") -> None:
    s.upsert_model("m-1", "smollm2", "alias", "f" * 64)
    s.upsert_suite("qa-1", "qa", "task", "h", "qa.yaml", {}, [("a", {"q": 1}, ["x"]), ("b", {"q": 2}, ["y"])])
    s.create_run(
        run_id,
        "m-1",
        "qa-1",
        config={},
        seed=1,
        versions={},
        git_sha=None,
        host="h",
        n_examples=2,
        metrics=[("em", {"name": "exact_match"}, "mean", True, True)],
    )


def test_batch_is_one_transaction(tmp_path):
    with Store(tmp_path / "s.duckdb") as s:
        _setup_run(s)
        gen = GenerationRow("k1", "m-1", "generate", "p", {}, "out")
        s.write_batch("r-1", [gen], [("a", "k1", False, None)], [ScoreRow("a", "em", 1.0)])
        # A duplicate example in the next batch violates the key: nothing of that batch lands.
        gen2 = GenerationRow("k2", "m-1", "generate", "p2", {}, "out2")
        with pytest.raises(duckdb.ConstraintException):
            s.write_batch("r-1", [gen2], [("a", "k2", False, None)], [ScoreRow("a", "em", 0.0)])
        assert s.counts("r-1") == (1, 0)
        assert s.cached_generations(["k1", "k2"]).keys() == {"k1"}


def test_failed_generation_is_an_error_row_not_a_cache_hit(tmp_path):
    with Store(tmp_path / "s.duckdb") as s:
        _setup_run(s)
        bad = GenerationRow("k1", "m-1", "generate", "p", {}, None, error="RuntimeError: boom")
        s.write_batch(
            "r-1",
            [bad],
            [("a", "k1", False, "RuntimeError: boom")],
            [ScoreRow("a", "em", None, 1.0, "RuntimeError: boom")],
        )
        assert s.cached_generations(["k1"]) == {}
        assert s.counts("r-1") == (1, 1)
        assert s.scores("r-1", "em") == [("a", None, 1.0, "RuntimeError: boom", None)]


def test_run_lookup_by_prefix_and_unknown(tmp_path):
    with Store(tmp_path / "s.duckdb") as s:
        _setup_run(s, "r-abcdef")
        assert s.get_run("r-abc").run_id == "r-abcdef"
        with pytest.raises(UserError, match="unknown run id 'r-zzz'"):
            s.get_run("r-zzz")


def test_missing_store_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no tunegate store"):
        Store(tmp_path / "nope.duckdb", must_exist=True)
    assert not (tmp_path / "nope.duckdb").exists()
