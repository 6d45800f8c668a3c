"""What SFT and DPO share: data in, trainer arguments, and the stored run around `trainer.train()`.

Order matters for "nothing half-registered": every input is checked (data, model, target
modules, 4-bit) before the store is opened; the training run row is written only then, and
the candidate model row only once its adapter is safely on disk.
"""

from __future__ import annotations

import logging
import os
import platform
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.paths import cache_dir
from trainers.config import LoadedConfig
from trainers.data import Example, TrainingData, files_hash, read_data

log = logging.getLogger(__name__)
Progress = Callable[[int, int, dict[str, Any]], None]


@dataclass(frozen=True)
class Splits:
    train: list[Example]
    eval: list[Example]
    hash: str
    info: dict[str, Any]


def load_splits(loaded: LoadedConfig, kind: str) -> Splits:
    """Train and eval examples, refusing unreadable lines, wrong formats and empty sets."""
    ds = loaded.cfg.data
    train_path = loaded.data_path("train")
    val_path = loaded.data_path("validation")
    train = _read_checked(loaded, train_path, kind, "train")
    evals = _read_checked(loaded, val_path, kind, "validation") if val_path else []
    if not val_path and ds.val_fraction > 0:
        order = list(range(len(train)))
        random.Random(loaded.cfg.training.seed).shuffle(order)
        n_eval = max(1, round(len(train) * ds.val_fraction))
        if n_eval >= len(train):
            raise loaded.error(f"val_fraction leaves no training data ({len(train)} records)", ("data",))
        evals = [train[i] for i in sorted(order[:n_eval])]
        train = [train[i] for i in sorted(order[n_eval:])]
    paths = [p for p in (train_path, val_path) if p]
    info: dict[str, Any] = {"train": str(train_path), "validation": str(val_path) if val_path else None}
    info |= {"n_train": len(train), "n_eval": len(evals), "val_fraction": ds.val_fraction}
    return Splits(train, evals, files_hash(paths), info)


def _read_checked(loaded: LoadedConfig, path: Path, kind: str, which: str) -> list[Example]:
    data: TrainingData = read_data(path, loaded.cfg.data.format)
    if data.bad:
        line, why = data.bad[0]
        more = (
            f" (and {len(data.bad) - 1} more bad lines; see `tunegate data check`)"
            if len(data.bad) > 1
            else ""
        )
        raise UserError(why + more, path=path, line=line)
    if data.kind != kind:
        hint = "convert it with `tunegate data convert --to messages` to train on the chosen replies"
        raise loaded.error(
            f"{path.name} is {data.format} data; `train {kind}` needs "
            + ("preference pairs (prompt/chosen/rejected)" if kind == "dpo" else f"SFT data ({hint})"),
            ("data", which),
        )
    usable = data.usable()
    if not usable:
        raise loaded.error(
            f"{path.name}: no usable records (each needs a prompt and a reply)", ("data", which)
        )
    if len(usable) < len(data.examples):
        skipped = [e.line for e in data.examples if not e.usable]
        log.warning(
            "%s: skipping %d record(s) without a prompt or reply: lines %s", path, len(skipped), skipped[:10]
        )
    return usable


def trainer_args(loaded: LoadedConfig, checkpoints: Path, has_eval: bool) -> dict[str, Any]:
    """TrainingArguments shared by SFTConfig and DPOConfig, from our config."""
    t = loaded.cfg.training
    check_trackers(loaded)
    args: dict[str, Any] = dict(
        output_dir=str(checkpoints),
        learning_rate=t.learning_rate,
        num_train_epochs=t.epochs,
        max_steps=t.max_steps or -1,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum,
        warmup_steps=t.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        lr_scheduler_type=t.lr_scheduler,
        weight_decay=t.weight_decay,
        max_length=t.max_length,
        logging_steps=t.logging_steps,
        gradient_checkpointing=t.gradient_checkpointing,
        bf16=t.precision == "bf16",  # TRL defaults bf16 on: say what the config says
        fp16=t.precision == "fp16",
        seed=t.seed,
        data_seed=t.seed,
        report_to=list(t.report_to) or "none",
        run_name=loaded.cfg.name,
        dataloader_pin_memory=_has_cuda(),
        disable_tqdm=True,
        save_strategy="no",
    )
    if has_eval:
        # Eval every N steps; checkpoints at the same steps let the best adapter be restored.
        args |= dict(
            eval_strategy="steps",
            eval_steps=t.eval_steps,
            save_strategy="steps",
            save_steps=t.eval_steps,
            save_total_limit=2,
            save_only_model=True,
            load_best_model_at_end=True,
            metric_for_best_model="eval_loss",
            greater_is_better=False,
        )
    return args


_TRACKER_PACKAGE = {"comet_ml": "comet-ml", "azure_ml": "azureml-core"}


def check_trackers(loaded: LoadedConfig) -> None:
    """Every `report_to` tracker is installed (one message naming the packages, exit 2)."""
    wanted = loaded.cfg.training.report_to
    if not wanted:
        return
    from transformers.integrations import get_available_reporting_integrations

    missing = [r for r in wanted if r not in get_available_reporting_integrations()]
    if missing:
        message = (
            f"report_to: {', '.join(missing)} not installed: "
            f"pip install {' '.join(_TRACKER_PACKAGE.get(m, m) for m in missing)}"
        )
        loc = ("training", "report_to")
        raise loaded.doc.error(message, loc) if loaded.doc else UserError(message, field=".".join(loc))
    if "tensorboard" in wanted:  # the checkpoint folder is temporary: log somewhere that stays
        os.environ.setdefault("TENSORBOARD_LOGGING_DIR", str(Path("runs") / loaded.cfg.name))


def callbacks(loaded: LoadedConfig, has_eval: bool) -> list[Any]:
    from transformers import EarlyStoppingCallback

    patience = loaded.cfg.training.early_stopping_patience
    return [EarlyStoppingCallback(early_stopping_patience=patience)] if has_eval and patience else []


def output_dir(loaded: LoadedConfig, key: str) -> Path:
    """Where the adapter of training `key` lives (publishing and reuse: `trainers.cache`)."""
    if loaded.cfg.output_dir:
        return Path(loaded.cfg.output_dir).expanduser().resolve()
    return cache_dir() / "adapters" / f"{loaded.cfg.name}-{key[:12]}"


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def new_training_run_id() -> str:
    return "t-" + secrets.token_hex(4)


def versions() -> dict[str, str]:
    from importlib import metadata

    from harness.runner.run import versions as eval_versions

    out = eval_versions()
    for pkg in ("trl", "peft", "bitsandbytes", "datasets", "accelerate"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def host() -> str:
    return platform.node()
