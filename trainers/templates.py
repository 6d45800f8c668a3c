"""What prompt format a training run used: the exact chat template and the data format.

Recorded with the adapter (`tunegate.json`: the template's text and sha256) and in the training
run's dataset info (sha256 and format), so an evaluation can tell whether it renders prompts the
way the adapter was trained to read them (harness.models.chat_template).
"""

from __future__ import annotations

from typing import Any

from harness.models.chat_template import template_sha
from trainers.config import LoadedConfig
from trainers.data import read_data


def prompt_format(tokenizer: Any, loaded: LoadedConfig, loss_on: str | None = None) -> dict[str, Any]:
    """{'chat_template': {'sha256', 'text'}, 'data_format': …, 'loss_on': …} of a training run."""
    text = getattr(tokenizer, "chat_template", None)
    path = loaded.data_path("train")
    fmt = loaded.cfg.data.format or (read_data(path).format if path else None)
    out: dict[str, Any] = {
        "chat_template": {"sha256": template_sha(text), "text": text} if text else None,
        "data_format": fmt,
    }
    if loss_on is not None:
        out["loss_on"] = loss_on  # assistant tokens only, or every token (completion-only when assistant)
    return out


def dataset_info(fmt: dict[str, Any]) -> dict[str, Any]:
    """The short form kept in training_runs.dataset: template hash and data format."""
    tpl = fmt.get("chat_template") or {}
    return {"chat_template_sha256": tpl.get("sha256"), "data_format": fmt.get("data_format")}
