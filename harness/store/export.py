"""`tunegate db export`: every table of the store as Parquet or CSV files, for dashboards."""

from __future__ import annotations

from pathlib import Path

from harness.errors import UserError
from harness.store.db import Store, one_row

FORMATS = {"parquet": "(FORMAT PARQUET)", "csv": "(FORMAT CSV, HEADER)"}


def export_store(store: Store, folder: Path, fmt: str) -> list[tuple[Path, int]]:
    """Write `folder/TABLE.{parquet,csv}` for every table; returns (file, rows) per table.

    JSON columns are written as their JSON text. DuckDB writes the files itself: no pyarrow. The
    store must be open with `write_dir=folder` (external access is off for everything else).
    """
    if fmt not in FORMATS:
        raise UserError(f"unknown export format '{fmt}'; known: {', '.join(FORMATS)}", field="format")
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} exists and is not a folder", field="DIR")
    folder.mkdir(parents=True, exist_ok=True)
    tables = [
        r[0]
        for r in store.db.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_catalog = current_database()"
            " AND table_schema = 'main' AND table_type = 'BASE TABLE' ORDER BY table_name"
        ).fetchall()
    ]
    out = []
    for t in tables:
        path = folder / f"{t}.{fmt}"
        target = str(path.resolve())  # allowed_directories matches absolute paths
        store.db.execute(
            f"COPY (SELECT * FROM \"{t}\") TO '{target.replace(chr(39), chr(39) * 2)}' {FORMATS[fmt]}"
        )
        out.append((path, one_row(store.db.execute(f'SELECT count(*) FROM "{t}"'))[0]))
    return out
