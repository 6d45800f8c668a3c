"""Trainer callbacks: every log event into the store as it happens, and an optional progress hook."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback

from harness.store import Store
from harness.store.training import log_training_step


class StoreLogCallback(TrainerCallback):
    """Writes each `on_log` (train loss, eval loss, lr, DPO reward margins…) as a training_logs row.

    Rows land while training runs, so a crash or Ctrl-C keeps the curve up to that point.
    """

    def __init__(self, store: Store | None, training_run_id: str) -> None:
        self.store = store
        self.training_run_id = training_run_id
        self.seq = 0
        self.last: dict[str, dict[str, Any]] = {}
        """Latest logs by split (train/eval), for the run summary."""

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
    ) -> None:
        if not logs or self.store is None:
            return
        log_training_step(self.store, self.training_run_id, self.seq, logs, int(state.global_step))
        self.seq += 1
        split = "eval" if any(k.startswith("eval_") for k in logs) else "train"
        if "train_runtime" not in logs:
            self.last[split] = dict(logs)


class ProgressCallback(TrainerCallback):
    """Calls `advance(step, total, logs)` whenever the trainer logs (every step by default)."""

    def __init__(self, advance: Callable[[int, int, dict[str, Any]], None]) -> None:
        self.advance = advance
        self.logs: dict[str, Any] = {}

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
    ) -> None:
        self.logs.update(logs or {})
        self.advance(int(state.global_step), int(state.max_steps), self.logs)
