"""Where tunegate keeps per-machine state (converted models, file hashes)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """$TUNEGATE_CACHE_DIR, else $XDG_CACHE_HOME/tunegate, else ~/.cache/tunegate."""
    env = os.environ.get("TUNEGATE_CACHE_DIR")
    if env:
        root = Path(env)
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tunegate"
    root.mkdir(parents=True, exist_ok=True)
    return root
