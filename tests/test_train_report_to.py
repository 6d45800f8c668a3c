"""`training.report_to` passes through to TRL without changing which adapter a config names."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import UserError
from trainers.config import load_config
from trainers.job import trainer_args

CONFIG = """kind: sft
name: rt
model: smollm2
data:
  train: {data}
training:
  max_steps: 2
{extra}"""

DATA = Path(__file__).resolve().parent.parent / "trainers" / "data" / "finetune_sft.jsonl"


def _load(tmp_path: Path, extra: str = ""):
    cfg = tmp_path / f"c{len(extra)}.yaml"
    cfg.write_text(CONFIG.format(data=DATA, extra=extra))
    return load_config(cfg, "sft")


def test_report_to_reaches_trl_and_keeps_the_adapter_key(tmp_path, monkeypatch):
    import transformers.integrations as integrations

    plain = _load(tmp_path)
    logged = _load(tmp_path, "  report_to: [tensorboard, wandb]\n")
    # logging is not identity: the cached adapter of the plain config is the logged one's too
    assert plain.key("d", "f") == logged.key("d", "f")
    assert trainer_args(plain, tmp_path, False)["report_to"] == "none"
    monkeypatch.setattr(
        integrations, "get_available_reporting_integrations", lambda: ["tensorboard", "wandb"]
    )
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    args = trainer_args(logged, tmp_path, False)
    assert args["report_to"] == ["tensorboard", "wandb"] and args["run_name"] == "rt"
    from trl import SFTConfig

    assert SFTConfig(**args).report_to == ["tensorboard", "wandb"]  # TRL takes them as they are
    import os

    assert os.environ["TENSORBOARD_LOGGING_DIR"] == str(Path("runs") / "rt")


def test_report_to_names_what_to_install(tmp_path, monkeypatch):
    import transformers.integrations as integrations

    monkeypatch.setattr(integrations, "get_available_reporting_integrations", lambda: [])
    with pytest.raises(UserError, match="report_to: mlflow not installed: pip install mlflow"):
        trainer_args(_load(tmp_path, "  report_to: [mlflow]\n"), tmp_path, False)
    with pytest.raises(UserError, match="report_to"):
        _load(tmp_path, "  report_to: [nonsense]\n")
