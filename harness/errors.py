"""User-facing errors: one clear sentence, mapped to exit code 2 by the CLI."""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """Bad input or usage. The message names the file/line/field and what was expected."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        self.detail = message
        where = ""
        if self.path:
            where = self.path + (f":{line}" if line is not None else "")
        if field:
            where = f"{where} field '{field}'" if where else f"field '{field}'"
        super().__init__(f"{where}: {message}" if where else message)


class StoreLocked(UserError):
    """Another process holds the store's write lock: its own exit code, so CI can retry."""

    exit_code = 3
