"""Loading the model to train: spec → weights (optionally 4-bit) → LoRA config, checked up front.

Quantisation and LoRA settings go through TRL's own `get_quantization_config` /
`get_peft_config` hooks, so a tunegate config means what the same TRL script would.

Device and dtype come from the model spec, resolved as for evaluation
(harness.models.device): `model: smollm2` trains on CUDA in bfloat16 where there is one and on
the CPU in float32 otherwise, exactly as before device choice; `?device=cpu&dtype=…` pins it.
The trainer itself (accelerate) uses the first visible GPU, so `cuda:N` is refused with the
CUDA_VISIBLE_DEVICES hint, and an explicit `device=cpu` on a GPU machine tells it `use_cpu`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from harness.errors import UserError
from harness.models import ResolvedModel, parse_model_spec, resolve_model
from trainers.config import LoadedConfig

log = logging.getLogger(__name__)


@dataclass
class TrainableModel:
    model: Any
    """A transformers model, or a trainable PeftModel when the spec carried an adapter."""
    tokenizer: Any
    resolved: ResolvedModel
    quantized: bool
    peft_config: Any | None
    """The new LoRA adapter to add (None when continuing the spec's adapter)."""
    trainer_device_args: dict[str, Any] = field(default_factory=dict)
    """TrainingArguments that keep the trainer on the spec's device (empty: its own choice)."""


def load_trainable(loaded: LoadedConfig) -> TrainableModel:
    """Everything that can fail on bad input fails here, before the store is touched."""
    cfg = loaded.cfg
    try:
        resolved = resolve_model(parse_model_spec(cfg.model))
    except UserError as e:
        raise loaded.error(e.detail, ("model",)) from None
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import ModelConfig, get_peft_config, get_quantization_config

    quant = cfg.quantization
    want_4bit = quant.load_in_4bit or bool(resolved.options.get("load_in_4bit"))
    targets = cfg.lora.target_modules
    placed_dtype = resolved.options.get("dtype", "float32")
    device_args = trainer_device_args(resolved.device, loaded)
    compute_dtype = placed_dtype if quant.compute_dtype == "auto" else quant.compute_dtype
    trl_args = ModelConfig(
        model_name_or_path=str(resolved.weights),
        dtype=compute_dtype if want_4bit else placed_dtype,
        use_peft=True,
        lora_r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        lora_target_modules=targets if isinstance(targets, str) else list(targets),
        load_in_4bit=want_4bit,
        bnb_4bit_quant_type=quant.quant_type,
        use_bnb_nested_quant=quant.double_quant,
    )
    kwargs: dict[str, Any] = {"dtype": getattr(torch, trl_args.dtype)}
    if want_4bit:
        _require_bitsandbytes(loaded)
        kwargs["quantization_config"] = get_quantization_config(trl_args)
        if resolved.device != "cpu":  # bitsandbytes quantizes on the way onto the GPU
            kwargs["device_map"] = {"": resolved.device}
    tokenizer = AutoTokenizer.from_pretrained(resolved.weights)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    try:
        model = AutoModelForCausalLM.from_pretrained(resolved.weights, **kwargs)
    except (ImportError, RuntimeError, ValueError, TypeError) as e:
        if want_4bit:
            raise loaded.error(
                f"bitsandbytes cannot load this model in 4-bit here: {e}", ("quantization",)
            ) from None
        raise loaded.error(f"cannot load model weights from {resolved.weights}: {e}", ("model",)) from None
    if resolved.adapter is not None:
        # Continue the spec's adapter (e.g. DPO on an SFT candidate); TRL keeps a frozen copy as reference.
        from peft import PeftModel

        if cfg.lora != type(cfg.lora)():
            log.warning("model spec has an adapter: continuing it, so the config's `lora` section is ignored")

        model = PeftModel.from_pretrained(model, str(resolved.adapter), is_trainable=True)
        return TrainableModel(model, tokenizer, resolved, want_4bit, None, device_args)
    check_target_modules(model, targets, loaded)
    peft_config = get_peft_config(trl_args)
    if not isinstance(targets, str):
        # ModelConfig turns a one-item list into a bare string (an argparse convenience), which
        # peft would read as a regex over full module paths; a set means "these suffixes".
        peft_config.target_modules = set(targets)
    return TrainableModel(model, tokenizer, resolved, want_4bit, peft_config, device_args)


def trainer_device_args(device: str, loaded: LoadedConfig) -> dict[str, Any]:
    """What the trainer must be told for the spec's device; nothing where it picks the same."""
    from harness.models.device import cuda_available, mps_available

    if device.startswith("cuda:") and device != "cuda:0":
        raise loaded.error(
            f"the trainer uses the first visible GPU: for {device}, run with "
            f"CUDA_VISIBLE_DEVICES={device.split(':')[1]} and device=cuda",
            ("model",),
        )
    if device == "cpu" and (cuda_available() or mps_available()):
        return {"use_cpu": True}
    return {}


def linear_module_names(model: Any) -> list[str]:
    """Short names of the linear layers LoRA can adapt (the output head excluded)."""
    names = set()
    for full, module in model.named_modules():
        if "Linear" in type(module).__name__ and not full.endswith("lm_head"):
            names.add(full.rsplit(".", 1)[-1])
    return sorted(names)


def check_target_modules(model: Any, targets: list[str] | str, loaded: LoadedConfig) -> None:
    if targets == "all-linear":
        return
    available = linear_module_names(model)
    missing = [t for t in targets if t not in available]
    if missing:
        raise loaded.error(
            f"target module(s) {', '.join(missing)} not in this model; its linear modules are: "
            f"{', '.join(available)}",
            ("lora", "target_modules"),
        )


def _require_bitsandbytes(loaded: LoadedConfig) -> None:
    try:
        import bitsandbytes  # noqa: F401
    except Exception as e:  # missing, or a build that fails to import on this machine
        raise loaded.error(
            f"4-bit loading needs a working bitsandbytes (pip install bitsandbytes): {e}",
            ("quantization", "load_in_4bit"),
        ) from None
