"""Content fingerprints of model files, with a per-machine cache keyed by (path, size, mtime)."""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from harness.paths import cache_dir

# Files that change what a model computes. Anything else in the folder (READMEs, logs) is ignored.
_RELEVANT = (".safetensors", ".bin", ".gguf", ".json", ".jinja", ".model", ".txt")
_SKIP = {"training_args.bin", "trainer_state.json", "README.md", "tunegate.json"}


_REMEMBER: contextvars.ContextVar[bool] = contextvars.ContextVar("remember_hashes", default=True)


@contextlib.contextmanager
def without_remembering() -> Iterator[None]:
    """Hashes computed inside are read from the per-machine memo but never written to it: a
    read-only command (gate, report, compare resolving a spec) leaves the cache as it found it."""
    token = _REMEMBER.set(False)
    try:
        yield
    finally:
        _REMEMBER.reset(token)


def file_sha256(path: Path) -> str:
    """sha256 of a file, remembered across processes while size and mtime are unchanged."""
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    memo_file = cache_dir() / "file-hashes.json"
    try:
        memo = json.loads(memo_file.read_text())
    except (OSError, ValueError):
        memo = {}
    if key in memo:
        return memo[key]
    with path.open("rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    if not _REMEMBER.get():
        return digest
    memo[key] = digest
    tmp = memo_file.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(memo))
    tmp.replace(memo_file)
    return digest


def folder_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix in _RELEVANT
        and p.name not in _SKIP
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def content_hash(files: Iterable[Path], root: Path | None = None) -> str:
    h = hashlib.sha256()
    for p in files:
        name = str(p.relative_to(root)) if root else p.name
        h.update(f"{name}\0{file_sha256(p)}\n".encode())
    return h.hexdigest()


def fingerprint(weights: Path, adapter: Path | None, options: dict[str, Any]) -> str:
    """Hash of the weights (and adapter) content plus the load options."""
    h = hashlib.sha256()
    h.update(b"weights\0" + content_hash(folder_files(weights), weights).encode())
    if adapter is not None:
        h.update(b"adapter\0" + content_hash(folder_files(adapter), adapter).encode())
    h.update(b"options\0" + json.dumps(options, sort_keys=True).encode())
    return h.hexdigest()


def predictions_fingerprint(path: Path, options: dict[str, Any]) -> str:
    """Hash of a predictions file's content plus how it is matched to examples."""
    h = hashlib.sha256()
    h.update(b"predictions\0" + file_sha256(path).encode())
    # match=id (ids required) replays what the default does on a file with ids: one identity
    options = {k: v for k, v in options.items() if (k, v) != ("match", "id")}
    h.update(b"options\0" + json.dumps(options, sort_keys=True).encode())
    return h.hexdigest()
