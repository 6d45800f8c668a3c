"""The adapter cache: one folder per training key, published whole, reused instead of retrained.

A folder appears only by an atomic rename of a temporary folder that already holds the weights
and `tunegate.json` (with the key), so a folder with a matching key is always complete. A
registered folder is never written again: models rows and fingerprints stay true to its files.
Temporary and checkpoint folders carry their owner (`PID@host`); those of dead processes, and
empty ones, are removed by the next training.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.paths import cache_dir
from harness.store.liveness import pid_alive, this_host
from trainers.config import LoadedConfig
from trainers.job import Splits, output_dir
from trainers.register import META_FILE, Candidate, read_meta, register_cached, write_meta

log = logging.getLogger(__name__)
_OWNED = re.compile(r"-(\d+)@(.+)-[A-Za-z0-9_]+$")


def owner_tag() -> str:
    return f"{os.getpid()}@{this_host()}"


def is_complete(out: Path, key: str) -> bool:
    """A published adapter of this training key (weights, config and meta all there)."""
    meta = read_meta(out)
    return bool(meta and meta.get("key") == key and (out / "adapter_config.json").is_file())


def cached_candidate(loaded: LoadedConfig, splits: Splits, db: Path) -> Candidate | None:
    """The finished adapter of this config + data + base, registered in `db` (its lineage
    completed), or None: train it.

    Also cleans leftovers of killed trainings and refuses an `output_dir` that holds something
    else, before anything heavy is loaded.
    """
    from harness.models import resolve_model
    from harness.store import Store
    from harness.store.training import mark_dead_training_runs

    try:
        base = resolve_model(loaded.cfg.model)
    except UserError as e:
        raise loaded.error(e.detail, ("model",)) from None
    key = loaded.key(splits.hash, base.fingerprint)
    out = output_dir(loaded, key)
    clean_leftovers(out.parent)
    if not is_complete(out, key):
        check_output_free(out)
        return None
    with Store(db) as store:
        cand = register_cached(store, out, read_meta(out) or {})
        mark_dead_training_runs(store)
    return cand


def check_output_free(out: Path) -> None:
    """`out` may receive a new adapter: absent, empty, or an unregistered leftover in the cache."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    in_cache = out.parent == cache_dir() / "adapters"
    if in_cache and not (out / META_FILE).exists():
        return  # never registered (the meta comes with the publish): safe to replace whole
    held = read_meta(out)
    what = (
        f"the adapter of another training ({held.get('name')}, key {str(held.get('key'))[:12]})"
        if held
        else "files that are not a tunegate adapter"
    )
    raise UserError(
        f"output_dir already holds {what}; an adapter folder is never overwritten "
        "(models registered from it would no longer match their files): choose another "
        "output_dir or remove the folder",
        path=out,
    )


def publish_adapter(model: Any, out: Path, meta: dict[str, Any]) -> None:
    """Save to a temporary sibling with its meta, then rename it into place in one step."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{owner_tag()}-{secrets.token_hex(3)}"
    try:
        model.save_pretrained(str(tmp))
        write_meta(tmp, meta)
        _swap_in(tmp, out, meta["key"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _swap_in(tmp: Path, out: Path, key: str) -> None:
    try:
        tmp.rename(out)  # atomic; replaces only an absent or empty folder
        return
    except OSError:
        pass
    if is_complete(out, key):
        return  # the same training finished first elsewhere: its folder is the adapter
    check_output_free(out)  # an unregistered leftover in the cache: moved aside whole
    aside = out.parent / f".{out.name}.old-{owner_tag()}-{secrets.token_hex(3)}"
    out.rename(aside)
    tmp.rename(out)
    shutil.rmtree(aside, ignore_errors=True)


def checkpoints_dir() -> Path:
    """A fresh checkpoint folder in the cache, named after its owner process."""
    return Path(tempfile.mkdtemp(prefix=f"ckpt-{owner_tag()}-", dir=cache_dir()))


def clean_leftovers(*folders: Path) -> list[Path]:
    """Remove `ckpt-*` and `.*.tmp-*` / `.*.old-*` folders that are empty or whose owner is dead."""
    roots = {cache_dir(), cache_dir() / "adapters", *folders}
    removed = []
    for root in roots:
        if not root.is_dir():
            continue
        for p in [*root.glob("ckpt-*"), *root.glob(".*.tmp-*"), *root.glob(".*.old-*")]:
            if p.is_dir() and _abandoned(p):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
    if removed:
        log.info("removed %d folder(s) left by killed trainings: %s", len(removed), removed[:5])
    return removed


def _abandoned(p: Path) -> bool:
    m = _OWNED.search(p.name)
    if m and m.group(2) == this_host():
        return not pid_alive(int(m.group(1)))  # a live training's folders are its own
    try:
        return not any(p.iterdir())  # unknown owner: only an empty folder is surely abandoned
    except OSError:
        return False
