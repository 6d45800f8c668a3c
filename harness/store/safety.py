"""Stores are data, never code: a locked-down DuckDB connection and a schema check.

A store file can come from anywhere (a CI artifact, a colleague's laptop). DuckDB files can
hold views, macros and generated columns, which are code that runs when tunegate reads a
table; with external access on, a view over `read_text('/proc/self/environ')` would put the
runner's environment into the report. So every connection tunegate opens on a store has
external access and extension autoload off, then its configuration locked, and before any
other statement the store's catalog is compared with what tunegate's own migrations create.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import duckdb

from harness.errors import UserError

SAFE_CONFIG: dict[str, Any] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}
"""Given to `duckdb.connect`; external access goes off (and the config is locked) right after."""


def connect(
    path: str | Path,
    *,
    read_only: bool = False,
    allowed_paths: Sequence[Path] = (),
    allowed_dirs: Sequence[Path] = (),
    threads: int | None = None,
) -> duckdb.DuckDBPyConnection:
    """A connection on `path` that can touch no file but its own (and those explicitly allowed).

    `allowed_paths`: other store files this connection ATTACHes (`db merge`); `allowed_dirs`:
    a folder it writes with COPY (`db export`). Both must be set before external access goes
    off, and nothing can change any of it afterwards (`lock_configuration`).
    """
    base = {**SAFE_CONFIG, **({"threads": threads} if threads else {})}  # threads: fixed before the lock
    if not allowed_paths and not allowed_dirs:
        con = duckdb.connect(str(path), read_only=read_only, config={**base, "enable_external_access": False})
    else:
        con = duckdb.connect(str(path), read_only=read_only, config=base)
        try:
            files = [str(p) + suffix for p in allowed_paths for suffix in _DB_FILES]
            if files:
                con.execute("SET allowed_paths = ?", [files])
            if allowed_dirs:
                con.execute("SET allowed_directories = ?", [[str(d).rstrip("/") + "/" for d in allowed_dirs]])
            con.execute("SET enable_external_access = false")
        except BaseException:
            con.close()
            raise
    con.execute("SET lock_configuration = true")
    return con


# A DuckDB database is its file plus the logs DuckDB writes beside it.
_DB_FILES = ("", ".wal", ".wal.recovery", ".wal.checkpoint")

# (what, query) over DuckDB's catalog functions, always qualified with `system.main.`: a store's
# own macro named `duckdb_views` would otherwise answer instead of DuckDB (and hide itself).
_CODE_OBJECTS: list[tuple[str, str]] = [
    ("view", "SELECT view_name FROM system.main.duckdb_views() WHERE database_name = ? AND NOT internal"),
    (
        "macro or function",
        "SELECT function_name FROM system.main.duckdb_functions() WHERE database_name = ? AND NOT internal",
    ),
    ("sequence", "SELECT sequence_name FROM system.main.duckdb_sequences() WHERE database_name = ?"),
    ("index", "SELECT index_name FROM system.main.duckdb_indexes() WHERE database_name = ?"),
    ("type", "SELECT type_name FROM system.main.duckdb_types() WHERE database_name = ? AND NOT internal"),
    (
        "schema",
        "SELECT schema_name FROM system.main.duckdb_schemas() WHERE database_name = ? AND NOT internal"
        " AND schema_name <> 'main'",
    ),
]

Schema = dict[str, tuple[tuple[Any, ...], ...]]
"""table name → its columns (name, type, default, nullable, generated) and constraints."""


def _schema(con: duckdb.DuckDBPyConnection, catalog: str) -> Schema:
    tables = [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM system.main.duckdb_tables() WHERE database_name = ? AND NOT temporary",
            [catalog],
        ).fetchall()
    ]
    out: Schema = {}
    for t in tables:
        cols = con.execute(
            "SELECT column_name, data_type, column_default, is_nullable, generation_expression"
            " FROM system.main.duckdb_columns() WHERE database_name = ? AND table_name = ?"
            " ORDER BY column_index",
            [catalog, t],
        ).fetchall()
        cons = con.execute(
            "SELECT constraint_type, constraint_text, expression FROM system.main.duckdb_constraints()"
            " WHERE database_name = ? AND table_name = ? ORDER BY ALL",
            [catalog, t],
        ).fetchall()
        out[t] = (tuple(map(tuple, cols)), tuple(map(tuple, cons)))
    return out


@lru_cache(maxsize=1)
def expected_schemas() -> tuple[Schema, ...]:
    """The schema after 0, 1, … N migrations, made by running them on an in-memory database."""
    from harness.store.migrations import MIGRATIONS

    con = duckdb.connect(":memory:", config={**SAFE_CONFIG, "enable_external_access": False})
    try:
        con.execute(_SCHEMA_VERSION)
        out = [_schema(con, "memory")]
        for fn in MIGRATIONS:
            fn(con)
            out.append(_schema(con, "memory"))
        return tuple(out)
    finally:
        con.close()


_SCHEMA_VERSION = (
    "CREATE TABLE IF NOT EXISTS schema_version "
    "(version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMP DEFAULT current_timestamp)"
)
"""The table `Store._migrate` creates before any migration (the same statement)."""


def check_schema(con: duckdb.DuckDBPyConnection, path: Path, catalog: str | None = None) -> None:
    """Refuse a store that holds anything tunegate's migrations do not create (one `UserError`
    naming the object), before any of its tables is read."""
    catalog = catalog or con.execute("SELECT system.main.current_database()").fetchone()[0]  # type: ignore[index]

    def refuse(what: str) -> UserError:
        return UserError(
            f"store {path} is not a tunegate store: {what}; a store holds data only, so tunegate "
            "refuses it and reads nothing from it (make the store again with tunegate, or pass another --db)"
        )

    for kind, query in _CODE_OBJECTS:
        names = [r[0] for r in con.execute(query, [catalog]).fetchall()]
        if names:
            raise refuse(f"it defines the {kind} {names[0]!r}")
    have = _schema(con, catalog)
    if not have:
        return  # a new, empty file: migrations make it
    expected = expected_schemas()
    version = _version(con, catalog, have, expected, refuse)
    if version < len(expected):
        _compare(have, expected[version], refuse, exact=True)
    else:  # from a newer tunegate (opened read-only): what we know must still be what we know
        _compare(have, expected[-1], refuse, exact=False)


def _version(
    con: duckdb.DuckDBPyConnection,
    catalog: str,
    have: Schema,
    expected: tuple[Schema, ...],
    refuse: Callable[[str], UserError],
) -> int:
    if "schema_version" not in have:
        raise refuse("it has tables but no schema_version table")
    _compare({"schema_version": have["schema_version"]}, expected[0], refuse, exact=True)
    row = con.execute(f'SELECT max(version) FROM "{catalog}".main.schema_version').fetchone()
    return int(row[0] or 0) if row else 0


def _compare(have: Schema, want: Schema, refuse: Callable[[str], UserError], *, exact: bool) -> None:
    for table, (cols, cons) in sorted(have.items()):
        if table not in want:
            if exact:
                raise refuse(f"unknown table {table!r}")
            continue
        want_cols, want_cons = want[table]
        by_name = {c[0]: c for c in want_cols}
        for col in cols:
            ref = by_name.get(col[0])
            if ref is None:
                if exact:
                    raise refuse(f"unknown column {table}.{col[0]}")
                continue
            if col != ref:
                raise refuse(f"column {table}.{col[0]} is {_describe(col)}, expected {_describe(ref)}")
        if exact and len(cols) != len(want_cols):
            missing = [c[0] for c in want_cols if c[0] not in {x[0] for x in cols}]
            raise refuse(f"table {table!r} lacks the column(s) {', '.join(missing)}")
        if exact and cons != want_cons:
            raise refuse(f"table {table!r} has other constraints than tunegate makes")


def _describe(col: tuple[Any, ...]) -> str:
    _, typ, default, _, generated = col
    text = str(typ)
    if default is not None:
        text += f" DEFAULT {default}"
    if generated is not None:
        text += f" GENERATED AS ({generated})"
    return text
