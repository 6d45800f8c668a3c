"""Named queries for what the gate reads (sides, load sides, degenerate outputs, sweeps) and the
lm-eval import's duplicate check: the SQL stays in the store, the callers ask by name."""

from __future__ import annotations

from typing import Any

from harness.store.db import Store, one_row


def run_exists(store: Store, run_id: str) -> bool:
    return bool(store.db.execute("SELECT 1 FROM runs WHERE run_id = ?", [run_id]).fetchone())


def model_exists(store: Store, model_id: str) -> bool:
    return bool(store.db.execute("SELECT 1 FROM models WHERE model_id = ?", [model_id]).fetchone())


def latest_completed_runs(store: Store, model_id: str) -> list[str]:
    """The newest completed run of each suite a model ran, by suite name."""
    rows = store.db.execute(
        "SELECT run_id FROM (SELECT r.run_id, s.name, row_number() OVER"
        " (PARTITION BY s.name ORDER BY r.started_at DESC) AS k FROM runs r JOIN suites s USING (suite_id)"
        " WHERE r.model_id = ? AND r.status = 'completed') WHERE k = 1 ORDER BY name",
        [model_id],
    ).fetchall()
    return [str(r[0]) for r in rows]


def models_of_spec(store: Store, spec: str) -> list[tuple[Any, ...]]:
    """(model_id, kind, fingerprint, load_options, created_at) of every stored model of `spec`."""
    return store.db.execute(
        "SELECT model_id, kind, fingerprint, load_options, created_at FROM models WHERE spec = ? "
        "ORDER BY created_at",
        [spec],
    ).fetchall()


def completed_run_ids(store: Store, model_id: str) -> list[str]:
    """A model's completed runs, newest first."""
    rows = store.db.execute(
        "SELECT run_id FROM runs WHERE model_id = ? AND status = 'completed' ORDER BY started_at DESC",
        [model_id],
    ).fetchall()
    return [str(r[0]) for r in rows]


def load_only_models(store: Store, ref: str) -> list[str]:
    """Models (by id or spec) with load runs and no completed quality run."""
    rows = store.db.execute(
        "SELECT model_id FROM models WHERE (model_id = ? OR spec = ?)"
        " AND model_id IN (SELECT model_id FROM load_runs)"
        " AND model_id NOT IN (SELECT model_id FROM runs WHERE status = 'completed')",
        [ref, ref],
    ).fetchall()
    return [str(r[0]) for r in rows]


_OUTPUTS = """
    SELECT re.example_id, trim(g.output) AS o, g.prompt AS p
    FROM run_examples re JOIN generations g USING (cache_key)
    WHERE re.run_id = ? AND re.error IS NULL AND g.request_type = 'generate' AND g.output IS NOT NULL
"""


def _echo(side: str, whole: int, head: int) -> str:
    o, p = f"{side}.o", f"{side}.p"
    return (
        f"(({p}) IS NOT NULL AND ((length({o}) >= {whole} AND contains({p}, {o})) OR "
        f"(length({o}) >= {head} AND contains({p}, left({o}, {head})))))"
    )


def degenerate_counts(
    store: Store, baseline_run: str, candidate_run: str, *, answer: int, echo_whole: int, echo_head: int
) -> tuple[int, int, int, int, int, int]:
    """Over the examples both runs answered with generated text: (n, identical outputs, baseline
    outputs of >= `answer` characters, identical among those, baseline echoes, candidate echoes).
    An echo is an output of >= `echo_whole` characters found whole in its prompt, or a longer one
    whose first `echo_head` characters are (harness.gate.degenerate)."""
    a, b = _echo("a", int(echo_whole), int(echo_head)), _echo("b", int(echo_whole), int(echo_head))
    n = int(answer)
    row = one_row(
        store.db.execute(
            f"WITH a AS ({_OUTPUTS}), b AS ({_OUTPUTS}) "
            "SELECT count(*), count(*) FILTER (WHERE a.o = b.o), "
            f"count(*) FILTER (WHERE length(a.o) >= {n}), "
            f"count(*) FILTER (WHERE a.o = b.o AND length(a.o) >= {n}), "
            f"count(*) FILTER (WHERE {a}), count(*) FILTER (WHERE {b}) "
            "FROM a JOIN b USING (example_id)",
            [baseline_run, candidate_run],
        )
    )
    return (int(row[0]), int(row[1]), int(row[2]), int(row[3]), int(row[4]), int(row[5]))


def sweep_runs(store: Store, suite: str | None = None, sweep: str | None = None) -> list[tuple[Any, ...]]:
    """(run_id, model_id, suite name, sweep id, step, role, started_at) of completed sweep runs,
    oldest first."""
    sql = (
        "SELECT r.run_id, r.model_id, s.name,"
        " json_extract_string(r.config, '$.backend.candidate.sweep.sweep_id') AS sweep_id,"
        " CAST(json_extract(r.config, '$.backend.candidate.sweep.step') AS INTEGER) AS step,"
        " json_extract_string(r.config, '$.backend.candidate.role') AS role, r.started_at"
        " FROM runs r JOIN suites s USING (suite_id) WHERE r.status = 'completed'"
        " AND json_extract_string(r.config, '$.backend.candidate.sweep.sweep_id') IS NOT NULL"
    )
    args: list[Any] = []
    if suite is not None:
        sql += " AND s.name = ?"
        args.append(suite)
    if sweep is not None:
        sql += " AND json_extract_string(r.config, '$.backend.candidate.sweep.sweep_id') = ?"
        args.append(sweep)
    return store.db.execute(sql + " ORDER BY r.started_at", args).fetchall()


def imported_run(store: Store, import_sha256: str) -> tuple[str, Any] | None:
    """(run_id, n_examples) of the run an lm-eval results file with this hash was imported as."""
    found = store.db.execute(
        "SELECT run_id, n_examples FROM runs WHERE json_extract_string(config, '$.import_sha256') = ?",
        [import_sha256],
    ).fetchone()
    return (str(found[0]), found[1]) if found else None
