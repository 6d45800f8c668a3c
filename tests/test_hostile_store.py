"""Stores are data, never code (issue #22, item 1).

A real store made by the CLI is copied and doctored with DuckDB the way an attacker would: a
table replaced by a VIEW that reads the runner's environment or /etc/passwd, a MACRO shadowing
a built-in, a column of another type, a generated column. Every command that opens it refuses
it with one message naming the object (exit 2), and the file's bytes are unchanged.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

from tests.conftest import run_cli, write_suite

SUITE = """name: qa
kind: task
data: data.jsonl
prompt: "Q: {{ q }}"
reference: a
metrics: [exact_match]
"""
ROWS = [{"id": f"e{i}", "q": f"What is {i} plus {i}?", "a": str(2 * i)} for i in range(3)]
SECRET_ENV = "TUNEGATE_HOSTILE_PROBE"
SECRET = "s3cr3t-value-from-the-runner-env"


def _jsonl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


@pytest.fixture(scope="module")
def real_store(tmp_path_factory) -> Path:
    """A store with one completed run, made by the real CLI."""
    tmp = tmp_path_factory.mktemp("real")
    suite = write_suite(tmp / "s", SUITE, _jsonl(ROWS))
    preds = tmp / "preds.jsonl"
    preds.write_text(_jsonl([{"id": r["id"], "output": r["a"]} for r in ROWS]), encoding="utf-8")
    db = tmp / "real.duckdb"
    r = run_cli("run", "--model", f"predictions:{preds}", "--suite", str(suite), "--db", str(db))
    assert r.returncode == 0, r.stderr[-2000:]
    return db


def _doctor(real: Path, dest: Path, *sql: str) -> Path:
    shutil.copy(real, dest)
    con = duckdb.connect(str(dest))  # the attacker's own DuckDB: everything allowed
    for s in sql:
        con.execute(s)
    con.execute("CHECKPOINT")
    con.close()
    return dest


def _run_id(db: Path) -> str:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT run_id FROM runs").fetchone()[0]
    finally:
        con.close()


ENVIRON_VIEW = (
    "ALTER TABLE models RENAME TO models_real",
    "CREATE VIEW models AS SELECT model_id, content AS spec, kind, fingerprint, base_model_id,"
    " adapter_path, load_options, created_at, FROM models_real, read_text('/proc/self/environ')",
)
PASSWD_VIEW = (
    "ALTER TABLE suites RENAME TO suites_real",
    "CREATE VIEW suites AS SELECT suite_id, (SELECT string_agg(column0, ',')"
    " FROM read_csv('/etc/passwd', header=false, sep='\\t')) AS name, kind, content_hash, path,"
    " config, created_at FROM suites_real",
)
CASES = {
    "environ_view": (ENVIRON_VIEW, "the view 'models'"),
    "passwd_view": (PASSWD_VIEW, "the view 'suites'"),
    "macro_lower": (("CREATE MACRO lower(x) AS 'pwned'",), "the macro or function 'lower'"),
    "macro_json": (
        ("CREATE MACRO json_extract_string(a, b) AS 'pwned'",),
        "the macro or function 'json_extract_string'",
    ),
    "wrong_type": (
        ("ALTER TABLE scores ALTER COLUMN value TYPE VARCHAR",),
        "column scores.value is VARCHAR, expected DOUBLE",
    ),
    "generated": (
        ("ALTER TABLE runs ADD COLUMN evil VARCHAR DEFAULT 'x'",),
        "unknown column runs.evil",
    ),
    "unknown_table": (("CREATE TABLE loot AS SELECT 1 AS x",), "unknown table 'loot'"),
    # a macro that would answer for DuckDB's own catalog function, hiding the view beside it
    "shadow_catalog": (
        ("CREATE MACRO duckdb_views() AS TABLE SELECT 1 AS x WHERE false", *ENVIRON_VIEW),
        "the view 'models'",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_doctored_store_is_refused_by_every_command(tmp_path, real_store, case):
    sql, named = CASES[case]
    db = _doctor(real_store, tmp_path / "evil.duckdb", *sql)
    run_id = _run_id(real_store)
    before = db.read_bytes()
    env = {SECRET_ENV: SECRET}
    for args in (
        ["runs", "--db", str(db)],
        ["show", run_id, "--db", str(db)],
        ["report", run_id, "--db", str(db), "--output", str(tmp_path / "r.html")],
        ["db", "merge", str(tmp_path / "out.duckdb"), str(db)],
        ["db", "export", str(tmp_path / "exp"), "--db", str(db)],
    ):
        r = run_cli(*args, env=env, timeout=120)
        out = r.stdout + r.stderr
        assert r.returncode == 2, (args, r.returncode, out[-2000:])
        assert "Traceback" not in out
        assert f"store {db} is not a tunegate store: it defines {named}" in out.replace("\n", "") or (
            named in out.replace("\n", "") and "is not a tunegate store" in out
        ), (args, out[-2000:])
        assert SECRET not in out and "root:x:0:0" not in out
        assert db.read_bytes() == before, f"{args} changed the store file"
    assert not (tmp_path / "r.html").exists()
    assert not (tmp_path / "out.duckdb").exists()


def test_real_store_still_opens_merges_and_exports(tmp_path, real_store):
    db = tmp_path / "copy.duckdb"
    shutil.copy(real_store, db)
    run_id = _run_id(db)
    for args in (
        ["runs", "--db", str(db)],
        ["show", run_id, "--db", str(db)],
        ["report", run_id, "--db", str(db), "--output", str(tmp_path / "r.html")],
        ["db", "merge", str(tmp_path / "out.duckdb"), str(db)],
        ["db", "export", str(tmp_path / "exp"), "--format", "csv", "--db", str(db)],
    ):
        r = run_cli(*args, timeout=120)
        assert r.returncode == 0, (args, r.stderr[-2000:])
    assert (tmp_path / "exp" / "runs.csv").read_text().count("\n") == 2


def test_store_connection_reads_no_file(tmp_path, real_store):
    """Even SQL run through tunegate's own connection cannot reach the runner's files."""
    from harness.store import Store

    db = tmp_path / "copy.duckdb"
    shutil.copy(real_store, db)
    with Store(db) as s:
        for sql in (
            "SELECT * FROM read_text('/proc/self/environ')",
            "SELECT * FROM read_csv('/etc/passwd')",
            f"ATTACH '{tmp_path / 'other.duckdb'}' AS o",
            f"COPY runs TO '{tmp_path / 'runs.csv'}'",
        ):
            with pytest.raises(duckdb.Error, match="disabled by configuration"):
                s.db.execute(sql)
        with pytest.raises(duckdb.Error, match="locked"):
            s.db.execute("SET enable_external_access = true")
    assert not (tmp_path / "other.duckdb").exists() and not (tmp_path / "runs.csv").exists()
