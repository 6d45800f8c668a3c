"""Parquet files read and written through an in-memory DuckDB (no store file is opened): the
request/output exchange files of `requests export` / `outputs import` (harness/exchange.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def _sql_path(path: Path) -> str:
    return str(path.resolve()).replace("'", "''")


def _memory() -> Any:
    import duckdb

    from harness.store.safety import SAFE_CONFIG

    return duckdb.connect(":memory:", config=dict(SAFE_CONFIG))


def write_parquet(frame: Any, path: Path, columns: Sequence[str], types: Mapping[str, str]) -> None:
    """The pandas `frame` as a Parquet file, each column cast to its SQL type (`types`, else
    VARCHAR): an all-null column would otherwise be written as INTEGER."""
    con = _memory()
    try:
        con.register("rows_frame", frame)
        casts = ", ".join(f'CAST("{c}" AS {types.get(c, "VARCHAR")}) AS "{c}"' for c in columns)
        con.execute(f"COPY (SELECT {casts} FROM rows_frame) TO '{_sql_path(path)}' (FORMAT parquet)")
    finally:
        con.close()


def read_parquet(path: Path) -> tuple[list[str], list[tuple[Any, ...]]]:
    """(column names, rows) of a Parquet file; duckdb.Error when it is not one."""
    con = _memory()
    try:
        cur = con.execute(f"SELECT * FROM read_parquet('{_sql_path(path)}')")
        names = [d[0] for d in cur.description]
        return names, cur.fetchall()
    finally:
        con.close()
