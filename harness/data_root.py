"""Suites read inside their own folder, unless the caller allows a wider root.

A suite file comes with a pull request; a `data:` of `/home/runner/.ssh/id_rsa`, `../../..` or
a symlink that points out of the suite's folder would be read, sent to the endpoint, stored and
shown in the report. So every file a suite names (data, chat templates, include_path folders,
judge sanity sets) must resolve (symlinks first) inside the folder of the suite file, or inside a
root the caller allows with `tunegate --data-root DIR` or `TUNEGATE_DATA_ROOT` (several joined by
`os.pathsep`). Like `--trust-code`, the permission comes from the command line or the
environment, never from the suite itself.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from harness.errors import UserError

ENV = "TUNEGATE_DATA_ROOT"
_roots: list[Path] = []


def allow_data_root(path: str | Path) -> None:
    """`--data-root DIR`: suites may also read files under DIR."""
    _roots.append(Path(path).expanduser().resolve())


def data_roots() -> list[Path]:
    """The roots allowed besides each suite's own folder (the flag's, then the environment's)."""
    env = [Path(p).expanduser().resolve() for p in os.environ.get(ENV, "").split(os.pathsep) if p.strip()]
    return [*_roots, *env]


def inside_suite(
    suite_file: Path,
    value: str | Path,
    *,
    line: int | None = None,
    field: str | None = None,
    extra_roots: Sequence[Path] = (),
) -> Path:
    """`value` (relative to the suite file's folder) as a resolved path, or a located `UserError`
    when it lies outside that folder and outside every allowed root."""
    folder = suite_file.parent.resolve()
    path = (suite_file.parent / Path(value).expanduser()).resolve()
    roots = [folder, *extra_roots, *data_roots()]
    if any(path.is_relative_to(r) for r in roots):
        return path
    raise UserError(
        f"{value} resolves to {path}, outside the suite's folder {folder}; a suite reads only files "
        f"in its own folder: move the file there, or allow a folder with tunegate --data-root DIR "
        f"(or {ENV})",
        path=suite_file,
        line=line,
        field=field,
    )
