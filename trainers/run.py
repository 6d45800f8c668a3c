"""The stored run around `trainer.train()`: row, step logs, adapter on disk, candidate registered."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import signals
from harness.errors import UserError
from harness.models import resolve_model
from harness.store import Store
from harness.store.training import finish_training_run, mark_dead_training_runs, start_training_run
from trainers import cache, job
from trainers.callbacks import ProgressCallback, StoreLogCallback
from trainers.config import LoadedConfig
from trainers.eval_callback import EvalSuiteCallback, eval_callbacks
from trainers.model import TrainableModel
from trainers.register import Candidate, candidate_spec, register_models
from trainers.templates import dataset_info, prompt_format

BuildTrainer = Callable[[dict[str, Any], list[Any]], Any]


def run_training(
    loaded: LoadedConfig,
    tm: TrainableModel,
    splits: job.Splits,
    build: BuildTrainer,
    db: Path,
    progress: job.Progress | None = None,
) -> Candidate:
    """Build the TRL trainer (still no store writes), then train with every step stored.

    The adapter is published (weights + meta, one atomic rename) before it is registered: a
    crash in between leaves a complete folder that the next run registers (`trainers.cache`).
    """
    cfg = loaded.cfg
    key = loaded.key(splits.hash, tm.resolved.fingerprint)
    out = job.output_dir(loaded, key)
    cache.check_output_free(out)
    run_id = job.new_training_run_id()
    log_cb = StoreLogCallback(None, run_id)  # the store is attached once the run row exists
    cbs = [log_cb, *job.callbacks(loaded, bool(splits.eval)), *eval_callbacks(loaded)]
    fmt = prompt_format(tm.tokenizer, loaded, getattr(cfg, "loss_on", None))  # recorded with the adapter
    if progress:
        cbs.append(ProgressCallback(progress))
    ckpt = cache.checkpoints_dir()
    try:
        try:
            trainer = build(job.trainer_args(loaded, ckpt, bool(splits.eval)), cbs)
        except ValueError as e:  # TRL's verdict on data/model combinations we did not foresee
            raise UserError(f"the trainer refused this setup: {e}") from None
        from transformers import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # logs go to the store and our progress line
        # One DuckDB thread, so writing a log row never wakes a worker pool beside torch's
        # OpenMP threads: on a small CPU any extra runnable thread stalls the whole step.
        with Store(db, threads=1) as store:
            mark_dead_training_runs(store)
            start_training_run(
                store,
                run_id,
                kind=cfg.kind,
                name=cfg.name,
                parent_model_id=tm.resolved.model_id,
                config=cfg.model_dump(mode="json"),
                dataset_hash=splits.hash,
                dataset={**splits.info, **dataset_info(fmt)},
                seed=cfg.training.seed,
                versions=job.versions(),
                git_sha=_git_sha(),
                host=job.host(),
            )
            log_cb.store = store
            for cb in cbs:  # suites evaluated during training store runs linked to this run
                if isinstance(cb, EvalSuiteCallback):
                    cb.attach(store, run_id, tm)
            try:
                trainer.train()
                summary = _summary(trainer.state, log_cb.last)
                meta = {
                    "key": key,
                    "training_run_id": run_id,
                    "kind": cfg.kind,
                    "name": cfg.name,
                    "parent_spec": tm.resolved.spec.raw,
                    "config": cfg.model_dump(mode="json"),
                    "dataset_hash": splits.hash,
                    "dataset": {**splits.info, **dataset_info(fmt)},
                    **fmt,
                    "versions": job.versions(),
                    "host": job.host(),
                    "summary": summary,
                    "log_history": [(h.get("step", 0), h) for h in trainer.state.log_history],
                }
                cache.publish_adapter(trainer.model, out, meta)
            except KeyboardInterrupt:  # Ctrl-C or SIGTERM (harness.signals)
                finish_training_run(store, run_id, "interrupted", error=signals.reason())
                signals.note_interrupted("training", run_id, str(store.path))
                raise
            except Exception as e:
                finish_training_run(store, run_id, "failed", error=f"{type(e).__name__}: {e}")
                raise
            cand = resolve_model(candidate_spec(tm.resolved, out))
            with store.transaction():
                register_models(store, tm.resolved, cand)
                finish_training_run(
                    store,
                    run_id,
                    "completed",
                    summary=summary,
                    candidate_model_id=cand.model_id,
                    adapter_path=str(out),
                )
    finally:
        shutil.rmtree(ckpt, ignore_errors=True)
    return Candidate(
        cand.spec.raw,
        cand.model_id,
        cand.base_model_id or tm.resolved.model_id,
        tm.resolved.model_id,
        out,
        run_id,
        summary,
    )


def _summary(state: Any, last: dict[str, dict[str, Any]]) -> dict[str, Any]:
    train, ev = last.get("train", {}), last.get("eval", {})
    best_ckpt = state.best_model_checkpoint
    return {
        "steps": state.global_step,
        "max_steps": state.max_steps,
        "epochs": state.epoch,
        "train_loss": train.get("loss"),
        "eval_loss": ev.get("eval_loss"),
        "best_eval_loss": state.best_metric,
        "best_step": int(best_ckpt.rsplit("-", 1)[-1]) if best_ckpt else None,
        "stopped_early": state.global_step < state.max_steps,
        "reward_margin": train.get("rewards/margins"),
        "reward_accuracy": train.get("rewards/accuracies"),
    }


def _git_sha() -> str | None:
    from harness.runner.run import git_sha

    return git_sha()
