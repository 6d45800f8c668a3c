"""DPO with a LoRA adapter: config → pairs → model → DPOTrainer → candidate.

On a base model a new adapter is trained and the reference is the base (adapter disabled).
On an SFT candidate (`model: smollm2?adapter=DIR`) TRL continues that adapter and keeps a
frozen copy of it as the reference, so the preference step is measured against the SFT model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.training import TRAINERS
from trainers import job
from trainers.config import DPOTrainConfig, LoadedConfig
from trainers.data import Example
from trainers.register import Candidate


@TRAINERS.register("dpo")
class DPO:
    """DPO's hooks into the shared recipe (trainers.skeleton)."""

    kind = "dpo"
    config_model = DPOTrainConfig
    data_kind = "dpo"

    def trl_classes(self) -> tuple[type[Any], type[Any]]:
        from trl import DPOConfig, DPOTrainer

        return DPOConfig, DPOTrainer

    def trl_options(self, cfg: DPOTrainConfig) -> dict[str, Any]:
        return {"beta": cfg.beta, "loss_type": [cfg.loss_type]}

    def rows(self, examples: list[Example], cfg: DPOTrainConfig) -> list[dict[str, Any]]:
        return dpo_rows(examples)


def train_dpo(loaded: LoadedConfig, db: Path, progress: job.Progress | None = None) -> Candidate:
    """Train a DPO adapter as `loaded` says; returns the registered candidate."""
    from trainers.skeleton import train

    return train(loaded, db, progress)


def dpo_rows(examples: list[Example]) -> list[dict[str, Any]]:
    """TRL's conversational preference format: the chat template renders prompt and replies."""
    return [{"prompt": ex.messages, "chosen": ex.chosen, "rejected": ex.rejected} for ex in examples]
