"""Trainer kinds are registered units: the config a kind validates is its own, and an unknown kind
says which ones exist. (Training itself, through the shared skeleton: tests/test_trainers.py.)"""

from __future__ import annotations

from typing import Any, Literal

import pytest

from harness.errors import UserError
from harness.training import TRAINERS
from trainers.config import SFTTrainConfig, load_config
from trainers.skeleton import trainer_kind


@pytest.fixture()
def registry():
    trainer_kind("sft")  # the built-ins are in the snapshot
    snap = TRAINERS.snapshot()
    yield TRAINERS
    TRAINERS.restore(snap)


def _config(tmp_path, body: str):
    path = tmp_path / "cfg.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def test_unknown_trainer_kind_says_which_exist(tmp_path):
    path = _config(tmp_path, "data: {train: finetune-sft}\n")
    with pytest.raises(UserError, match="unknown trainer 'sfft'. Did you mean 'sft'?.*dpo, sft"):
        load_config(path, "sfft")


def test_a_registered_kind_validates_its_own_config(registry, tmp_path):
    class LongSFTConfig(SFTTrainConfig):
        kind: Literal["sft-long"] = "sft-long"  # type: ignore[assignment]
        max_turns: int = 8

    @registry.register("sft-long")
    class LongSFT:
        kind = "sft-long"
        config_model = LongSFTConfig
        data_kind = "sft"

        def trl_classes(self) -> tuple[type[Any], type[Any]]:
            raise AssertionError("not trained here")

        def trl_options(self, cfg: Any) -> dict[str, Any]:
            return {}

        def rows(self, examples: list[Any], cfg: Any) -> list[dict[str, Any]]:
            return []

    body = "name: x\ndata: {train: finetune-sft}\nmax_turns: 3\n"
    loaded = load_config(_config(tmp_path, body), "sft-long")
    assert isinstance(loaded.cfg, LongSFTConfig) and loaded.cfg.max_turns == 3
    assert trainer_kind("sft-long").data_kind == "sft"
    with pytest.raises(UserError, match="unknown key") as e:  # the SFT config has no such key
        load_config(_config(tmp_path, body), "sft")
    assert e.value.line == 3
