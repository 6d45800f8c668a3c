"""Reading user text files as UTF-8: a bad byte is a located user error, not a traceback."""

from __future__ import annotations

from pathlib import Path

from harness.errors import UserError


def read_utf8(path: Path) -> str:
    """The file's text with newlines as `open()` gives them (\r\n and \r become \n); invalid
    UTF-8 raises a UserError naming the file, line and column."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise UserError(
            f"not valid UTF-8 (byte 0x{data[e.start]:02x} at column {column}); save the file as UTF-8",
            path=path,
            line=line,
        ) from None
