"""Checkpoint sweeps: the `checkpoint-*` folders a TRL/transformers run saved, in step order.

Each checkpoint is an adapter folder (peft saves one per checkpoint); its `trainer_state.json`
gives the losses logged up to that step. A sweep evaluates them all on one base load
(harness.models.adapters) and links every run to its step (`runs.config.backend.candidate.sweep`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UserError

_STEP = re.compile(r"^checkpoint-(\d+)$")


@dataclass(frozen=True)
class Checkpoint:
    step: int
    path: Path
    losses: dict[str, float]
    """train_loss / eval_loss logged at (or last before) this step, from trainer_state.json."""


def find_checkpoints(folders: list[Path]) -> list[Checkpoint]:
    """Folders named checkpoint-N under each given folder (or given themselves), by step."""
    found: dict[Path, int] = {}
    for folder in folders:
        folder = folder.expanduser().resolve()
        if not folder.is_dir():
            raise UserError("checkpoint folder does not exist", path=folder)
        m = _STEP.match(folder.name)
        if m:
            found[folder] = int(m.group(1))
            continue
        subs = {
            p.resolve(): int(mm.group(1))
            for p in folder.iterdir()
            if (mm := _STEP.match(p.name)) and p.is_dir()
        }
        if not subs:
            raise UserError("no checkpoint-N folders in it (TRL/transformers save them there)", path=folder)
        found.update(subs)
    out = []
    for path, step in sorted(found.items(), key=lambda kv: (kv[1], str(kv[0]))):
        if not (path / "adapter_config.json").is_file():
            raise UserError(
                "checkpoint has no adapter_config.json (a sweep evaluates peft adapter checkpoints)",
                path=path,
            )
        out.append(Checkpoint(step, path, _losses(path, step)))
    steps = [c.step for c in out]
    if len(set(steps)) != len(steps):
        raise UserError(f"two checkpoints of the same step among {', '.join(map(str, folders))}")
    return out


def _losses(path: Path, step: int) -> dict[str, float]:
    try:
        state = json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    out: dict[str, float] = {}
    for h in state.get("log_history", []):
        if h.get("step", 0) > step:
            continue
        if "loss" in h:
            out["train_loss"] = float(h["loss"])
        if "eval_loss" in h:
            out["eval_loss"] = float(h["eval_loss"])
    return out


def training_run_of(checkpoints: list[Checkpoint]) -> str | None:
    """The tunegate training run that saved these checkpoints, when its tunegate.json is beside them."""
    for c in checkpoints:
        for folder in (c.path.parent, c.path):
            try:
                meta = json.loads((folder / "tunegate.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if meta.get("training_run_id"):
                return str(meta["training_run_id"])
    return None


def sweep_id(base_fingerprint: str, checkpoints: list[Checkpoint]) -> str:
    """Same base and checkpoint folders → same sweep id (a re-run extends the same sweep)."""
    h = hashlib.sha256(base_fingerprint.encode())
    for c in checkpoints:
        h.update(f"\0{c.step}\0{c.path}".encode())
    return "s-" + h.hexdigest()[:10]


def log_history(checkpoints: list[Checkpoint]) -> list[dict[str, Any]]:
    """The fullest log history among the checkpoints (the last one's), for the loss curves."""
    for c in reversed(checkpoints):
        try:
            return json.loads((c.path / "trainer_state.json").read_text(encoding="utf-8")).get(
                "log_history", []
            )
        except (OSError, ValueError):
            continue
    return []
