"""Training configs: one YAML file per run, validated into these models (unknown keys are errors).

Defaults follow common LoRA/QLoRA practice (r=16, alpha=32, dropout 0.05, lr 2e-4, cosine,
3% warmup). Data paths are relative to the config file, or the name of a bundled data set.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from pydantic import Field

from harness.config import LocatedYaml, Strict
from harness.errors import UserError

if TYPE_CHECKING:
    from trainers.eval_callback import EvalDuring

DATA_DIR = Path(__file__).parent / "data"
BUNDLED_DATA = {
    "finetune-sft": DATA_DIR / "finetune_sft.jsonl",
    "finetune-dpo": DATA_DIR / "finetune_dpo.jsonl",
}


class LoraSettings(Strict):
    r: int = Field(16, ge=1)
    """Rank of the update matrices."""
    alpha: int = Field(32, ge=1)
    """The update is scaled by alpha / r."""
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    """Module names to adapt, e.g. [q_proj, v_proj]; all-linear = every linear layer but the head."""


class QuantizationSettings(Strict):
    """QLoRA: the frozen base is stored in 4 bits by bitsandbytes; adapters train in higher precision."""

    load_in_4bit: bool = False
    quant_type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = True
    """Quantise the quantisation constants too (saves ~0.4 bit per parameter)."""
    compute_dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"
    """dtype the 4-bit weights are de-quantised to for matmuls; bfloat16 on recent GPUs; auto:
    the model spec's dtype as resolved (bfloat16/float16 on a GPU, float32 on CPU)."""


class DataSettings(Strict):
    train: str
    """A .jsonl/.json file (relative to this config) or a bundled set: finetune-sft, finetune-dpo."""
    validation: str | None = None
    """Eval-loss data; without it, `val_fraction` of train is held out (seeded)."""
    val_fraction: float = Field(0.0, ge=0.0, lt=0.5)
    format: Literal["alpaca", "sharegpt", "messages", "dpo"] | None = None
    """Detected from the first record when not given."""


# transformers' reporting integrations (TrainingArguments.report_to)
ReportTo = Literal[
    "azure_ml", "clearml", "codecarbon", "comet_ml", "dagshub", "dvclive", "flyte", "mlflow",
    "neptune", "swanlab", "tensorboard", "trackio", "wandb",
]  # fmt: skip


class TrainingSettings(Strict):
    learning_rate: float = Field(2e-4, gt=0.0)
    epochs: float = Field(1.0, gt=0.0)
    max_steps: int | None = Field(None, ge=1)
    """When set, overrides epochs."""
    batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    warmup_ratio: float = Field(0.03, ge=0.0, lt=1.0)
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = "cosine"
    weight_decay: float = Field(0.0, ge=0.0)
    max_length: int = Field(512, ge=8)
    """Tokens per sequence; longer records are truncated (see `tunegate data check`)."""
    eval_steps: int = Field(10, ge=1)
    """Eval loss on the validation data every N optimizer steps."""
    early_stopping_patience: int = Field(2, ge=0)
    """Stop after this many evaluations without a lower eval loss (0 = never); the best adapter is kept."""
    logging_steps: int = Field(1, ge=1)
    gradient_checkpointing: bool = False
    """Trade ~20% speed for activation memory; worth it on big models, not on a 135M one on a CPU."""
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    """Mixed-precision autocast for the trainable part."""
    seed: int = 42
    report_to: list[ReportTo] = Field(default_factory=list)
    """Also log to these trackers through transformers' integrations (each needs its own package:
    wandb, tensorboard, mlflow, …); the run is named after the config's `name`. Logging only:
    not part of the adapter's identity, and the training rows still land in the store. TensorBoard
    writes under $TENSORBOARD_LOGGING_DIR (default ./runs/NAME)."""


class _TrainConfig(Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    """Names the adapter folder and the training run."""
    model: str = "smollm2"
    """Model spec to train: a base, or a base with ?adapter=DIR to continue that adapter; its
    ?device=auto|cpu|cuda|mps and ?dtype=auto|float32|bfloat16|float16 place the model
    (harness.models.device: auto = CUDA in bfloat16 where there is one, else the CPU in float32)."""
    data: DataSettings
    lora: LoraSettings = LoraSettings()
    quantization: QuantizationSettings = QuantizationSettings()
    output_dir: str | None = None
    """Where the adapter is saved (relative to the working directory); default: the tunegate cache."""


class SFTTrainConfig(_TrainConfig):
    kind: Literal["sft"] = "sft"
    training: TrainingSettings = TrainingSettings()
    loss_on: Literal["assistant", "all"] = "assistant"
    """assistant: loss on the replies only (prompts are context); all: on every token."""
    packing: bool = False
    """Pack several records per sequence (faster on GPUs with flash attention)."""


class DPOTraining(TrainingSettings):
    learning_rate: float = Field(5e-6, gt=0.0)
    """DPO wants a much smaller step than SFT (alignment-handbook QLoRA recipes use 5e-6)."""


class DPOTrainConfig(_TrainConfig):
    kind: Literal["dpo"] = "dpo"
    training: DPOTraining = DPOTraining()
    beta: float = Field(0.1, gt=0.0)
    """How far the policy may drift from the reference (higher = closer)."""
    loss_type: Literal["sigmoid", "ipo", "hinge", "robust"] = "sigmoid"


class LoadedConfig:
    """A validated config plus what it takes to point errors at its lines."""

    def __init__(self, cfg: SFTTrainConfig | DPOTrainConfig, doc: LocatedYaml | None) -> None:
        self.cfg = cfg
        self.doc = doc
        self.base = doc.path.parent if doc else Path.cwd()
        self.eval_during: EvalDuring | None = None
        """--eval-suite/--eval-every, set by the CLI: not part of the config or its cache key."""

    def error(self, message: str, loc: tuple[str, ...]) -> UserError:
        return self.doc.error(message, loc) if self.doc else UserError(message, field=".".join(loc))

    @overload
    def data_path(self, which: Literal["train"]) -> Path: ...  # required by DataSettings
    @overload
    def data_path(self, which: Literal["train", "validation"]) -> Path | None: ...
    def data_path(self, which: Literal["train", "validation"]) -> Path | None:
        value = getattr(self.cfg.data, which)
        if value is None:
            return None
        if value in BUNDLED_DATA:
            return BUNDLED_DATA[value]
        path = (self.base / value).resolve()
        if not path.is_file():
            raise self.error(f"data file not found: {path}", ("data", which))
        return path

    def key(self, data_hash: str, base_fingerprint: str) -> str:
        """Identity of a training job: same config, data and base weights → same adapter folder."""
        # where and whether it is logged does not change the adapter
        cfg = self.cfg.model_dump(mode="json", exclude={"output_dir": True, "training": {"report_to"}})
        cfg["data"] = {k: v for k, v in cfg["data"].items() if k not in ("train", "validation")}
        blob = json.dumps([cfg, data_hash, base_fingerprint], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


def load_config(path: Path, kind: str, **overrides: Any) -> LoadedConfig:
    """Validate a training YAML file; CLI `overrides` (None = not given) win over the file."""
    doc = LocatedYaml(path)
    if not isinstance(doc.data, dict):
        raise UserError("a training config must be a YAML mapping", path=path, line=1)
    if doc.data.get("kind", kind) != kind:
        raise doc.error(
            f"this is a {doc.data['kind']} config; use `tunegate train {doc.data['kind']}`", ("kind",)
        )
    from trainers.skeleton import trainer_kind

    cfg = doc.validate(trainer_kind(kind).config_model)
    return LoadedConfig(apply_overrides(cfg, **overrides), doc)


def apply_overrides(cfg: Any, **overrides: Any) -> Any:
    """`model`, `output_dir` and `max_steps`/`seed` (under training) set from the command line."""
    top = {k: v for k, v in overrides.items() if v is not None and k in ("model", "output_dir", "name")}
    train = {k: v for k, v in overrides.items() if v is not None and k in ("max_steps", "seed")}
    if train:
        top["training"] = cfg.training.model_copy(update=train)
    return cfg.model_copy(update=top) if top else cfg
