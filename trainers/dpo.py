"""DPO with a LoRA adapter: config → pairs → model → DPOTrainer → candidate.

On a base model a new adapter is trained and the reference is the base (adapter disabled).
On an SFT candidate (`model: smollm2?adapter=DIR`) TRL continues that adapter and keeps a
frozen copy of it as the reference, so the preference step is measured against the SFT model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainers import job
from trainers.cache import cached_candidate
from trainers.config import DPOTrainConfig, LoadedConfig
from trainers.data import Example
from trainers.model import load_trainable
from trainers.register import Candidate


def train_dpo(loaded: LoadedConfig, db: Path, progress: job.Progress | None = None) -> Candidate:
    """Train a DPO adapter as `loaded` says; returns the registered candidate."""
    cfg = loaded.cfg
    assert isinstance(cfg, DPOTrainConfig), "load_config(..., 'dpo') validates a DPO config"
    splits = job.load_splits(loaded, "dpo")  # bad data fails before the heavy imports
    reused = cached_candidate(loaded, splits, db)  # same config, data and base: nothing to train
    if reused is not None:
        return reused
    tm = load_trainable(loaded)
    from datasets import Dataset, disable_progress_bars
    from trl import DPOConfig, DPOTrainer

    from trainers.run import run_training

    disable_progress_bars()

    def build(args: dict[str, Any], callbacks: list[Any]) -> DPOTrainer:
        return DPOTrainer(
            model=tm.model,
            args=DPOConfig(**args, **tm.trainer_device_args, beta=cfg.beta, loss_type=[cfg.loss_type]),
            train_dataset=Dataset.from_list(dpo_rows(splits.train)),
            eval_dataset=Dataset.from_list(dpo_rows(splits.eval)) if splits.eval else None,
            processing_class=tm.tokenizer,
            peft_config=tm.peft_config,
            callbacks=callbacks,
        )

    return run_training(loaded, tm, splits, build, db, progress)


def dpo_rows(examples: list[Example]) -> list[dict[str, Any]]:
    """TRL's conversational preference format: the chat template renders prompt and replies."""
    return [{"prompt": ex.messages, "chosen": ex.chosen, "rejected": ex.rejected} for ex in examples]
