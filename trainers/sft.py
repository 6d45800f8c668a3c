"""Supervised fine-tuning with a LoRA/QLoRA adapter: config → data → model → SFTTrainer → candidate.

Loss on assistant tokens only (the default) is done with TRL's conversational
prompt-completion format and `completion_only_loss`: it works with any chat template.
TRL's `assistant_only_loss` needs `{% generation %}` markers, which most templates
(SmolLM2's included) lack and TRL can only patch for the families it knows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainers import job
from trainers.cache import cached_candidate
from trainers.config import LoadedConfig, SFTTrainConfig
from trainers.data import Example, Message
from trainers.model import load_trainable
from trainers.register import Candidate


def train_sft(loaded: LoadedConfig, db: Path, progress: job.Progress | None = None) -> Candidate:
    """Train an SFT adapter as `loaded` says; returns the registered candidate."""
    cfg = loaded.cfg
    assert isinstance(cfg, SFTTrainConfig), "load_config(..., 'sft') validates an SFT config"
    splits = job.load_splits(loaded, "sft")  # bad data fails before the heavy imports
    reused = cached_candidate(loaded, splits, db)  # same config, data and base: nothing to train
    if reused is not None:
        return reused
    tm = load_trainable(loaded)
    from datasets import Dataset, disable_progress_bars
    from trl import SFTConfig, SFTTrainer

    from trainers.run import run_training

    disable_progress_bars()

    def build(args: dict[str, Any], callbacks: list[Any]) -> SFTTrainer:
        return SFTTrainer(
            model=tm.model,
            args=SFTConfig(
                **args,
                **tm.trainer_device_args,
                packing=cfg.packing,
                completion_only_loss=cfg.loss_on == "assistant",
            ),
            train_dataset=Dataset.from_list(sft_rows(splits.train, cfg.loss_on)),
            eval_dataset=Dataset.from_list(sft_rows(splits.eval, cfg.loss_on)) if splits.eval else None,
            processing_class=tm.tokenizer,
            peft_config=tm.peft_config,
            callbacks=callbacks,
        )

    return run_training(loaded, tm, splits, build, db, progress)


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
