"""`tunegate db merge | export`: join the stores of parallel jobs; export tables as files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tunegate.cli.common import DEFAULT_DB, DbOption, console

app = typer.Typer(help="Store files: merge the stores of sharded CI jobs, export tables as files.")


@app.command("merge")
def merge_cmd(
    out: Annotated[Path, typer.Argument(help="Store to write (created when missing).")],
    inputs: Annotated[list[Path], typer.Argument(help="Stores to merge into OUT.")],
) -> None:
    """Merge stores into OUT; the shards of one sharded run become one run.

    Identical rows are kept once; the same key with other content is an error (exit 2) and OUT
    is left as it was.
    """
    from harness.store.merge import merge_stores

    report = merge_stores(out, list(inputs))
    added = ", ".join(f"{n} {t}" for t, n in sorted(report.added.items()) if n) or "nothing new"
    console.print(f"merged {len(inputs)} store(s) into {out}: {added}", highlight=False, markup=False)
    for new_id, ids in report.merged_runs:
        console.print(
            f"  {new_id}: one run from {len(ids)} shards ({', '.join(ids)})", highlight=False, markup=False
        )


@app.command("export")
def export_cmd(
    folder: Annotated[Path, typer.Argument(help="Folder to write TABLE.parquet / TABLE.csv files into.")],
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
    db: DbOption = DEFAULT_DB,
) -> None:
    """Write every table of the store as a Parquet or CSV file."""
    from harness.store import Store
    from harness.store.export import export_store

    # the one folder SQL may write into: the store itself can reach no other file
    with Store(db, must_exist=True, write_dir=folder) as store:
        files = export_store(store, folder, fmt)
    for path, n in files:
        console.print(f"{path}  {n} rows", highlight=False, markup=False)
