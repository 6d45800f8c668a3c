"""`tunegate db merge`: join the stores of parallel CI jobs into one, shards into one run.

DuckDB allows one writer process per file, so N parallel jobs write N files and this joins
them. Every table is copied by its primary key: a row that is already there identically is kept
once; the same key with other content is an error naming the table, the key and the columns, and
nothing is written (one transaction). Cached results (generations, judgments) are the exception
that the store itself makes: a successful row replaces a failed one for the same key.

Shards (`run --shard K/N`) are stored as ordinary runs with `config.shard`. After the copy, the N
shard runs of one model × suite (same seed and limit) become ONE run: a new run id derived from
the shard run ids (so merging the same shards again is a no-op), `config.shards` listing where
each part came from, and their rows (run_examples, scores, run_metrics, …) moved onto it. The
shard runs themselves are not kept, so compare, gate and report see one run. A missing or
doubled shard is an error.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from harness.errors import UserError
from harness.store.db import Store, one_row

# Columns that say when or where a row was written, not what it holds: never a conflict.
_WHEN = {"created_at", "updated_at", "imported_at", "logged_at"}
_IGNORE: dict[str, set[str]] = {
    "models": {"spec", "adapter_path"},  # the spec as first written; the adapter is in the fingerprint
    "suites": {"path"},  # the checkout path differs between CI machines; the content hash does not
    "generations": {"latency_s"},
    "judgments": {"latency_s", "attempts"},
}
_CACHES = {"generations", "judgments"}  # error rows are never cache hits: a success wins
_SKIP = {"schema_version"}
# Run config keys that may differ between the shards of one run (paths on each CI machine).
_LOCAL_CONFIG = {"shard", "suite_path", "backend"}


@dataclass
class MergeReport:
    """What a merge did."""

    added: dict[str, int] = field(default_factory=dict)
    """Rows added per table."""
    merged_runs: list[tuple[str, list[str]]] = field(default_factory=list)
    """(new run id, the shard run ids it was made of)."""


def merge_stores(out: Path, inputs: list[Path]) -> MergeReport:
    """Merge `inputs` into `out` (created when missing) in one transaction."""
    if not inputs:
        raise UserError("give at least one store to merge: tunegate db merge OUT.duckdb IN.duckdb…")
    seen: dict[Path, Path] = {}
    for p in inputs:
        real = p.resolve()
        if real == out.resolve():
            raise UserError(f"{p} is the output store; merge into a new file or leave it out of the inputs")
        if real in seen:
            raise UserError(f"{p} is given twice (also as {seen[real]})")
        seen[real] = p
        with Store(p, must_exist=True) as s:  # migrates it, like every command that opens a store
            if s.read_only_reason:
                raise UserError(s.read_only_reason)
    created = not out.exists()
    report = MergeReport()
    try:
        with Store(out, attach=inputs) as store:  # the inputs are the only files it may open
            store.require_writable()
            _merge(store.db, inputs, report)
    except BaseException:
        if created:  # leave no half-made output behind
            for f in (out, out.with_name(out.name + ".wal")):
                f.unlink(missing_ok=True)
        raise
    return report


def _merge(con: duckdb.DuckDBPyConnection, inputs: list[Path], report: MergeReport) -> None:
    tables = [t for t in _tables(con, one_row(con.execute("SELECT current_database()"))[0]) if t not in _SKIP]
    aliases = []
    try:
        for i, p in enumerate(inputs):
            alias = f"merge_in{i}"
            con.execute(f"ATTACH '{_quote(str(p.resolve()))}' AS {alias} (READ_ONLY)")
            aliases.append(alias)
        con.execute("BEGIN TRANSACTION")
        before = {t: _count(con, t) for t in tables}
        try:
            for alias, p in zip(aliases, inputs):
                theirs = set(_tables(con, alias))
                for t in tables:
                    if t in theirs:
                        cols = ", ".join(f'"{c}"' for c in _columns(con, t))
                        _merge_rows(con, t, f"SELECT {cols} FROM {alias}.main.{t}", str(p))
            _join_shards(con, tables, report)
            report.added = {t: _count(con, t) - before[t] for t in tables}
            con.execute("DROP TABLE IF EXISTS _merge_src")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
    finally:
        for alias in aliases:
            con.execute(f"DETACH {alias}")


def _merge_rows(con: duckdb.DuckDBPyConnection, table: str, select: str, source: str) -> None:
    """Insert the rows of `select` into `table` that are not there yet; conflicts are errors."""
    cols = _columns(con, table)
    key = _primary_key(con, table) or cols
    cmp = [c for c in cols if c not in key and c not in _WHEN | _IGNORE.get(table, set())]
    con.execute(f"CREATE OR REPLACE TEMP TABLE _merge_src AS {select}")
    on = " AND ".join(f's."{k}" IS NOT DISTINCT FROM m."{k}"' for k in key)
    ok = " AND s.error IS NULL AND m.error IS NULL" if table in _CACHES else ""
    if table in _CACHES:  # a stored failure gives way to a success for the same key
        con.execute(
            f"DELETE FROM {table} m WHERE m.error IS NOT NULL AND EXISTS "
            f"(SELECT 1 FROM _merge_src s WHERE {on} AND s.error IS NULL)"
        )
    if cmp:
        differs = " OR ".join(f's."{c}" IS DISTINCT FROM m."{c}"' for c in cmp)
        _refuse(con, table, key, cmp, source, f"_merge_src s JOIN {table} m ON {on}{ok} WHERE {differs}")
        # two rows of one key inside the source (shard runs moved onto one run id)
        _refuse(con, table, key, cmp, source, f"_merge_src s JOIN _merge_src m ON {on}{ok} WHERE {differs}")
    keys = ", ".join(f's."{k}"' for k in key)
    prefer = " ORDER BY (s.error IS NULL) DESC" if table in _CACHES else ""
    names = ", ".join(f'"{c}"' for c in cols)
    con.execute(
        f"INSERT INTO {table} ({names}) SELECT {', '.join(f's.{chr(34)}{c}{chr(34)}' for c in cols)}"
        f" FROM _merge_src s WHERE NOT EXISTS (SELECT 1 FROM {table} m WHERE {on})"
        f" QUALIFY row_number() OVER (PARTITION BY {keys}{prefer}) = 1"
    )


def _refuse(
    con: duckdb.DuckDBPyConnection, table: str, key: list[str], cmp: list[str], source: str, join: str
) -> None:
    sel = ", ".join(f's."{k}"' for k in key)
    cells = ", ".join(f'(s."{c}" IS DISTINCT FROM m."{c}") AS "{c}"' for c in cmp)
    rows = con.execute(f"SELECT {sel}, {cells} FROM {join} LIMIT 3").fetchall()
    if not rows:
        return
    first = rows[0]
    what = ", ".join(f"{k}={v!r}" for k, v in zip(key, first[: len(key)]))
    differ = [c for c, d in zip(cmp, first[len(key) :]) if d]
    raise UserError(
        f"{source}: table {table} has a row with {what} that conflicts with one already merged "
        f"(different {', '.join(differ)}); nothing was written",
    )


def _join_shards(con: duckdb.DuckDBPyConnection, tables: list[str], report: MergeReport) -> None:
    """The N shard runs of one model × suite become one run (see the module docstring)."""
    rows = con.execute(
        "SELECT run_id, model_id, suite_id, config, seed FROM runs"
        " WHERE json_extract(config, '$.shard') IS NOT NULL ORDER BY run_id"
    ).fetchall()
    groups: dict[tuple[Any, ...], list[tuple[int, str, dict[str, Any]]]] = defaultdict(list)
    for run_id, model_id, suite_id, config, seed in rows:
        cfg = json.loads(config)
        k, n = int(cfg["shard"]["k"]), int(cfg["shard"]["n"])
        groups[(model_id, suite_id, n, cfg.get("limit"), seed)].append((k, run_id, cfg))
    run_tables = [t for t in tables if t != "runs" and "run_id" in _columns(con, t)]
    for (model_id, suite_id, n, _, _), parts in groups.items():
        parts.sort()
        label = f"model {model_id} × suite {suite_id}"
        by_k: dict[int, list[str]] = defaultdict(list)
        for k, run_id, _ in parts:
            by_k[k].append(run_id)
        doubled = {k: ids for k, ids in by_k.items() if len(ids) > 1}
        if doubled:
            k, ids = next(iter(doubled.items()))
            raise UserError(
                f"runs {' and '.join(ids)} are both shard {k}/{n} of {label}: merge the stores of "
                "one sharded evaluation at a time"
            )
        missing = [k for k in range(1, n + 1) if k not in by_k]
        if missing:
            have = ", ".join(f"{k}/{n} {ids[0]}" for k, ids in sorted(by_k.items()))
            raise UserError(
                f"shard {', '.join(f'{k}/{n}' for k in missing)} of {label} is missing (have {have}): "
                "merge the stores of all N shards together"
            )
        common = {k: v for k, v in parts[0][2].items() if k not in _LOCAL_CONFIG}
        for _, run_id, cfg in parts[1:]:
            other = {k: v for k, v in cfg.items() if k not in _LOCAL_CONFIG}
            if other != common:
                diff = sorted(k for k in common.keys() | other.keys() if common.get(k) != other.get(k))
                raise UserError(
                    f"shard runs {parts[0][1]} and {run_id} of {label} were run with different "
                    f"settings ({', '.join(diff)}); they cannot be merged into one run"
                )
        ids = [run_id for _, run_id, _ in parts]
        new_id = "r-" + hashlib.sha256(",".join(ids).encode()).hexdigest()[:8]
        config = {k: v for k, v in parts[0][2].items() if k != "shard"}
        config["shards"] = [{"k": k, "n": n, "run_id": run_id} for k, run_id, _ in parts]
        _merge_rows(con, "runs", _merged_run_sql(con, new_id, ids, config), f"shards of {label}")
        for t in run_tables:
            cols = ", ".join(
                f"{_lit(new_id)} AS run_id" if c == "run_id" else f'"{c}"' for c in _columns(con, t)
            )
            _merge_rows(con, t, f"SELECT {cols} FROM {t} WHERE run_id IN {_in(ids)}", f"shards of {label}")
            con.execute(f"DELETE FROM {t} WHERE run_id IN {_in(ids)}")
        con.execute(f"DELETE FROM runs WHERE run_id IN {_in(ids)}")
        report.merged_runs.append((new_id, ids))


def _merged_run_sql(con: duckdb.DuckDBPyConnection, new_id: str, ids: list[str], config: dict) -> str:
    """One runs row standing for the shard runs `ids`: completed only when every shard is."""
    status = (
        "CASE WHEN bool_and(status = 'completed') THEN 'completed'"
        " WHEN bool_or(status = 'failed') THEN 'failed' ELSE 'interrupted' END"
    )
    exprs = {
        "run_id": _lit(new_id),
        "status": status,
        "config": _lit(json.dumps(config, ensure_ascii=False, sort_keys=True)),
        "started_at": "min(started_at)",
        "ended_at": "max(ended_at)",
        "n_examples": "sum(n_examples)",
        "error": "string_agg(error, '; ' ORDER BY run_id)",
        "pid": "NULL",  # no process owns the merged run
        "heartbeat_at": "max(heartbeat_at)",
    }
    cols = _columns(con, "runs")
    sel = ", ".join(f'{exprs.get(c, f"first({chr(34)}{c}{chr(34)} ORDER BY run_id)")} AS "{c}"' for c in cols)
    return f"SELECT {sel} FROM runs WHERE run_id IN {_in(ids)}"


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return one_row(con.execute(f"SELECT count(*) FROM {table}"))[0]


def _tables(con: duckdb.DuckDBPyConnection, catalog: str) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_catalog = ?"
            " AND table_schema = 'main' AND table_type = 'BASE TABLE' ORDER BY table_name",
            [catalog],
        ).fetchall()
    ]


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_catalog = current_database()"
            " AND table_schema = 'main' AND table_name = ? ORDER BY ordinal_position",
            [table],
        ).fetchall()
    ]


def _primary_key(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    row = con.execute(
        "SELECT constraint_column_names FROM duckdb_constraints() WHERE database_name = current_database()"
        " AND schema_name = 'main' AND table_name = ? AND constraint_type = 'PRIMARY KEY'",
        [table],
    ).fetchone()
    return list(row[0]) if row else []


def _in(ids: list[str]) -> str:
    return "(" + ", ".join(_lit(i) for i in ids) + ")"


def _lit(s: str) -> str:
    return "'" + _quote(s) + "'"


def _quote(s: str) -> str:
    return s.replace("'", "''")
