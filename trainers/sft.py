"""Supervised fine-tuning with a LoRA/QLoRA adapter: config → data → model → SFTTrainer → candidate.

Loss on assistant tokens only (the default) is done with TRL's conversational
prompt-completion format and `completion_only_loss`: it works with any chat template.
TRL's `assistant_only_loss` needs `{% generation %}` markers, which most templates
(SmolLM2's included) lack and TRL can only patch for the families it knows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.training import TRAINERS
from trainers import job
from trainers.config import LoadedConfig, SFTTrainConfig
from trainers.data import Example, Message
from trainers.register import Candidate


@TRAINERS.register("sft")
class SFT:
    """SFT's hooks into the shared recipe (trainers.skeleton)."""

    kind = "sft"
    config_model = SFTTrainConfig
    data_kind = "sft"

    def trl_classes(self) -> tuple[type[Any], type[Any]]:
        from trl import SFTConfig, SFTTrainer

        return SFTConfig, SFTTrainer

    def trl_options(self, cfg: SFTTrainConfig) -> dict[str, Any]:
        return {"packing": cfg.packing, "completion_only_loss": cfg.loss_on == "assistant"}

    def rows(self, examples: list[Example], cfg: SFTTrainConfig) -> list[dict[str, Any]]:
        return sft_rows(examples, cfg.loss_on)


def train_sft(loaded: LoadedConfig, db: Path, progress: job.Progress | None = None) -> Candidate:
    """Train an SFT adapter as `loaded` says; returns the registered candidate."""
    from trainers.skeleton import train

    return train(loaded, db, progress)


def sft_rows(examples: list[Example], loss_on: str) -> list[dict[str, list[Message]]]:
    """TRL rows: one prompt/completion pair per assistant turn, or whole conversations.

    A multi-turn conversation yields one row per reply, each with the turns before it as
    prompt, so every assistant token is trained on and no user token is.
    """
    if loss_on == "all":
        return [{"messages": ex.messages} for ex in examples]
    rows = []
    for ex in examples:
        msgs = ex.messages
        for i, m in enumerate(msgs):
            if (
                m["role"] == "assistant"
                and m["content"].strip()
                and any(p["role"] == "user" for p in msgs[:i])
            ):
                rows.append({"prompt": msgs[:i], "completion": [m]})
    return rows
