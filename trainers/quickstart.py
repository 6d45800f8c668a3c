"""The quickstart's candidate: a QLoRA SFT adapter on the bundled data, trained once per machine."""

from __future__ import annotations

from pathlib import Path

from trainers.config import DATA_DIR, load_config
from trainers.job import Progress
from trainers.register import Candidate

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
    from trainers.sft import train_sft

    # Same config + data + base weights → same folder; train_sft reuses a finished adapter there.
    return train_sft(load_config(config, "sft", max_steps=max_steps), db, progress)
