"""The quickstart's candidate: a QLoRA SFT adapter on the bundled data, trained once per machine."""

from __future__ import annotations

from pathlib import Path

from trainers.config import DATA_DIR, load_config
from trainers.job import Progress, output_dir
from trainers.register import Candidate, read_meta, register_cached

QUICKSTART_CONFIG = DATA_DIR / "quickstart_sft.yaml"


def quickstart_candidate(
    db: Path, progress: Progress | None = None, config: Path = QUICKSTART_CONFIG, max_steps: int | None = None
) -> str:
    """Model spec of the bundled QLoRA SFT candidate, training it only if no cached adapter matches."""
    return quickstart_training(db, progress, config, max_steps).spec


def quickstart_training(
    db: Path, progress: Progress | None = None, config: Path = QUICKSTART_CONFIG, max_steps: int | None = None
) -> Candidate:
    """Like `quickstart_candidate`, with the lineage and training summary."""
    from harness.models import resolve_model
    from harness.store import Store
    from trainers.job import load_splits
    from trainers.sft import train_sft

    loaded = load_config(config, "sft", max_steps=max_steps)
    splits = load_splits(loaded, "sft")
    # Same config + data + base weights → same folder; a finished adapter there is reused.
    key = loaded.key(splits.hash, resolve_model(loaded.cfg.model).fingerprint)
    out = output_dir(loaded, key)
    meta = read_meta(out) if (out / "adapter_config.json").is_file() else None
    if meta and meta.get("key") == key:
        with Store(db) as store:
            return register_cached(store, out, meta)
    return train_sft(loaded, db, progress)
