"""Training layer: LoRA/QLoRA SFT and DPO through TRL + peft + bitsandbytes, producing candidates.

Importing this package imports neither torch nor TRL; each entry point does, when called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["merge_adapter", "quickstart_candidate", "train", "train_dpo", "train_sft"]


def quickstart_candidate(db: Path, progress: Any = None, max_steps: int | None = None) -> str:
    """Model spec of the bundled QLoRA SFT candidate (trained once per machine, then cached)."""
    from trainers.quickstart import quickstart_candidate as run

    return run(db, progress, max_steps=max_steps)


def train(loaded: Any, db: Path, progress: Any = None) -> Any:
    """Train the adapter a loaded config describes, whatever its kind (harness.training.TRAINERS)."""
    from trainers.skeleton import train as run

    return run(loaded, db, progress)


def train_sft(loaded: Any, db: Path, progress: Any = None) -> Any:
    from trainers.sft import train_sft as run

    return run(loaded, db, progress)


def train_dpo(loaded: Any, db: Path, progress: Any = None) -> Any:
    from trainers.dpo import train_dpo as run

    return run(loaded, db, progress)


def merge_adapter(spec: str, out: Path, **kw: Any) -> Any:
    from trainers.merge import merge_adapter as run

    return run(spec, out, **kw)
