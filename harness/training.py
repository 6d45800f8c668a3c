"""The trainer contract and the registry of trainer kinds (`tunegate train KIND`).

A trainer kind is only what differs between SFT, DPO (or a plugin's kind): its config model,
the training data it takes, TRL's config and trainer classes with its own options, and the
rows it feeds them. Everything else is one skeleton (`trainers.skeleton.train`): base and
tokenizer, LoRA/QLoRA, data checks, the adapter cache, callbacks and a log row every step,
early stopping, and the adapter saved with its lineage, config, data hash and chat template.

The built-in kinds register from `trainers.sft` and `trainers.dpo`; a plugin registers its own
with `@TRAINERS.register("name")` on a class with a no-argument constructor. This module
imports nothing from `trainers/`, and no torch.
"""

from __future__ import annotations

from typing import Any, Protocol

from harness.registry import Registry


class TrainerKind(Protocol):
    """The hooks of one kind of training run."""

    kind: str
    config_model: type[Any]
    """The pydantic model of its YAML config (a `trainers.config` train config, `kind` included)."""
    data_kind: str
    """The training data it takes (`trainers.data`): "sft" (conversations) or "dpo" (pairs)."""

    def trl_classes(self) -> tuple[type[Any], type[Any]]:
        """(TRL config class, TRL trainer class), imported when called."""
        ...

    def trl_options(self, cfg: Any) -> dict[str, Any]:
        """The kind's own fields of the TRL config (the shared ones come from the skeleton)."""
        ...

    def rows(self, examples: list[Any], cfg: Any) -> list[dict[str, Any]]:
        """The dataset rows TRL's trainer takes, from the checked training examples."""
        ...


TRAINERS: Registry[TrainerKind] = Registry("trainer")
"""Trainer kind name → a class building its `TrainerKind` (built-ins: trainers.sft, trainers.dpo)."""
