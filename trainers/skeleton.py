"""One training recipe for every kind: config → data → model → TRL trainer → stored candidate.

The kind (`harness.training.TRAINERS`) supplies its hooks: the TRL classes, its options and
its dataset rows. The rest is shared: data checked before any heavy import, an adapter reused
when config, data and base are the same, the model loaded (LoRA/QLoRA), and the stored run
around `trainer.train()` (`trainers.run`: logs every step, early stopping, adapter + lineage).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.training import TRAINERS, TrainerKind
from trainers import job
from trainers.cache import cached_candidate
from trainers.config import LoadedConfig
from trainers.model import load_trainable
from trainers.register import Candidate


def trainer_kind(kind: str) -> TrainerKind:
    """The registered trainer kind `kind` (UserError with did-you-mean when unknown)."""
    import trainers.dpo
    import trainers.sft  # noqa: F401  (the built-in kinds register on import)

    return TRAINERS.get(kind).factory()


def train(loaded: LoadedConfig, db: Path, progress: job.Progress | None = None) -> Candidate:
    """Train the adapter `loaded` describes; returns the registered candidate."""
    cfg = loaded.cfg
    tk = trainer_kind(cfg.kind)
    assert isinstance(cfg, tk.config_model), f"load_config(..., {cfg.kind!r}) validates its own config"
    splits = job.load_splits(loaded, tk.data_kind)  # bad data fails before the heavy imports
    reused = cached_candidate(loaded, splits, db)  # same config, data and base: nothing to train
    if reused is not None:
        return reused
    tm = load_trainable(loaded)
    from datasets import Dataset, disable_progress_bars

    config_cls, trainer_cls = tk.trl_classes()
    from trainers.run import run_training

    disable_progress_bars()

    def build(args: dict[str, Any], callbacks: list[Any]) -> Any:
        return trainer_cls(
            model=tm.model,
            args=config_cls(**args, **tm.trainer_device_args, **tk.trl_options(cfg)),
            train_dataset=Dataset.from_list(tk.rows(splits.train, cfg)),
            eval_dataset=Dataset.from_list(tk.rows(splits.eval, cfg)) if splits.eval else None,
            processing_class=tm.tokenizer,
            peft_config=tm.peft_config,
            callbacks=callbacks,
        )

    return run_training(loaded, tm, splits, build, db, progress)
