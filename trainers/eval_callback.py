"""`train sft|dpo --eval-suite S --eval-every N`: evaluate suites on the live model during training.

Every N optimizer steps (and at the last) the suites run on the model being trained, through the
normal runner, as normal stored runs: each step is its own model (fingerprint = parent +
training run + step) linked to the training run and step in `runs.config.backend.candidate.sweep`,
so the report can draw suite metric vs step beside the loss curves, and `gate --candidate
best:SUITE/METRIC` can pick a step. This is how "eval loss still falls but answers got worse"
becomes visible while it happens.
"""

from __future__ import annotations

import hashlib
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from harness.models.adapters import AdapterView, CandidateInfo
from harness.models.chat_template import TemplateChoice, template_sha
from harness.models.resolve import ResolvedModel
from harness.models.spec import ModelSpec
from harness.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalDuring:
    """What `--eval-suite/--eval-every` asked for (set on LoadedConfig.eval_during by the CLI)."""

    suites: list[str]
    every: int
    limit: int | None = None
    batch_size: int = 8


def eval_callbacks(loaded: Any) -> list[Any]:
    during = getattr(loaded, "eval_during", None)
    return [EvalSuiteCallback(during)] if during else []


class _LiveShared:
    """What AdapterView needs from a SharedBase, for the model the trainer is training."""

    def __init__(self, model: Any, tokenizer: Any, resolved: ResolvedModel) -> None:
        self.live = model
        self.resolved = resolved
        self.hf = type("HF", (), {"tokenizer": tokenizer, "_model": model})()

    @property
    def loaded(self) -> Any:
        return self.live

    def activate(self, name: str | None) -> Any:
        return self.live


class EvalSuiteCallback(TrainerCallback):
    """Runs the suites on the live model at every `every`-th step and at the end."""

    def __init__(self, during: EvalDuring) -> None:
        from suites import load_suite

        self.during = during
        self.suites = [load_suite(s) for s in during.suites]  # a bad suite fails before training
        self.store: Store | None = None
        self.outcomes: list[tuple[int, Any]] = []
        """(step, RunOutcome) of every evaluation, for the CLI's summary."""

    def attach(self, store: Store, training_run_id: str, tm: Any) -> None:
        self.store, self.training_run_id, self.tm = store, training_run_id, tm

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
        step = int(state.global_step)
        if self.store is None or model is None:
            return
        if step % self.during.every and step != state.max_steps:
            return
        if any(s == step for s, _ in self.outcomes):
            return
        self.evaluate(model, kw.get("processing_class") or self.tm.tokenizer, step)

    def view(self, model: Any, tokenizer: Any, step: int) -> AdapterView:
        parent = self.tm.resolved
        fp = hashlib.sha256(
            f"live\0{parent.fingerprint}\0{self.training_run_id}\0{step}".encode()
        ).hexdigest()
        spec = ModelSpec(
            # not a loadable spec: it names the parent, the training run and the step
            raw=f"{parent.spec.raw}{'&' if '?' in parent.spec.raw else '?'}"
            f"training_run={self.training_run_id}&step={step}",
            kind=parent.spec.kind,
            path=parent.spec.path,
            options=dict(parent.spec.options),
        )
        resolved = ResolvedModel(
            spec,
            parent.weights,
            Path(f"live:{self.training_run_id}/step-{step}"),
            dict(parent.options),
            fp,
            parent.base_fingerprint or parent.fingerprint,
            device=parent.device,
        )
        sha = template_sha(getattr(tokenizer, "chat_template", None))
        tpl = TemplateChoice(None, "training tokenizer", sha, sha, "training")
        sweep = {"sweep_id": self.training_run_id, "step": step, "training_run_id": self.training_run_id}
        shared = _LiveShared(model, tokenizer, resolved)
        return AdapterView(shared, resolved, None, CandidateInfo("live", tpl, sweep=sweep))  # type: ignore[arg-type]

    def evaluate(self, model: Any, tokenizer: Any, step: int) -> None:
        import torch

        from harness.runner import RunOptions, run_suite

        store = self.store
        assert store is not None, "attach() gives the store before training starts"
        view = self.view(model, tokenizer, step)
        options = RunOptions(limit=self.during.limit, batch_size=self.during.batch_size)
        # The runner seeds torch and random per run: keep training's random streams as they were.
        py_state, torch_state = random.getstate(), torch.get_rng_state()
        cuda_state = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        was_training = model.training
        model.eval()
        try:
            for suite in self.suites:
                self.outcomes.append((step, run_suite(store, view, suite, options)))
                log.info("step %d: %s evaluated", step, suite.config.name)
        finally:
            if was_training:
                model.train()
            random.setstate(py_state)
            torch.set_rng_state(torch_state)
            if cuda_state is not None:
                torch.cuda.set_rng_state_all(cuda_state)
