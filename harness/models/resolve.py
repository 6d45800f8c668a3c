"""From a parsed spec to the concrete files, fingerprint and model id (no weights loaded)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.models.fingerprint import fingerprint, predictions_fingerprint
from harness.models.gguf import converted_folder, smollm2_gguf
from harness.models.spec import ModelSpec, parse_model_spec
from harness.models.weights_check import require_safetensors


@dataclass(frozen=True)
class ResolvedModel:
    """Everything needed to load a model and to identify its outputs in the store."""

    spec: ModelSpec
    weights: Path | None
    """Local weights (an HF folder or GGUF file); None for an endpoint."""
    adapter: Path | None
    options: dict[str, Any]
    """Effective options that change the numbers (device/dtype as resolved, 4-bit, n_ctx…)."""
    fingerprint: str
    base_fingerprint: str | None
    """Fingerprint of the base without the adapter (lineage)."""
    device: str = "cpu"
    """Where a local model is loaded (cpu, cuda, cuda:N, mps)."""
    facts: dict[str, Any] = field(default_factory=dict)
    """What identifies the model beyond files (an endpoint's /v1/models entry, revision)."""

    @property
    def model_id(self) -> str:
        return model_id_for(self.fingerprint)

    @property
    def base_model_id(self) -> str | None:
        return model_id_for(self.base_fingerprint) if self.base_fingerprint else None


def model_id_for(fp: str) -> str:
    return "m-" + fp[:12]


def resolve_model(raw: str | ModelSpec) -> ResolvedModel:
    """Resolve a spec through its backend's `resolve` (no weights are loaded)."""
    from harness.models.registry import BACKENDS

    spec = parse_model_spec(raw) if isinstance(raw, str) else raw
    return BACKENDS.for_kind(spec.kind).load("resolve")(spec)


def resolve_predictions(spec: ModelSpec) -> ResolvedModel:
    # no weights: the file's content is the model's identity
    fp = predictions_fingerprint(Path(spec.path), spec.options)
    return ResolvedModel(spec, Path(spec.path), None, dict(spec.options), fp, None)


def resolve_local(spec: ModelSpec) -> ResolvedModel:
    """HF folder / GGUF / alias: converts GGUF files once (cached) so every load is a fast HF load;
    device and dtype 'auto' are resolved against this machine and fingerprinted."""
    from harness.models.device import choose_placement

    if spec.kind == "alias":
        weights = converted_folder(smollm2_gguf())
    elif spec.kind == "gguf":
        weights = converted_folder(Path(spec.path))
    else:
        weights = Path(spec.path)
    adapter = Path(spec.adapter) if spec.adapter else None
    if adapter is not None:
        _check_adapter(adapter)
    require_safetensors(weights, adapter)  # a pickled-only .bin is refused before any run exists
    opts = spec.options
    placement = choose_placement(
        opts.get("device", "auto"), opts.get("dtype", "auto"), opts.get("device_map")
    )
    options = placement.fingerprint_options()
    if opts.get("load_in_4bit"):
        options["load_in_4bit"] = True
    base_options = dict(options)  # lineage: the base weights, whatever template renders prompts
    if opts.get("chat_template"):
        from harness.models.chat_template import fingerprint_value

        options["chat_template"] = fingerprint_value(opts["chat_template"], adapter)
    fp = fingerprint(weights, adapter, options)
    base_fp = fingerprint(weights, None, base_options) if adapter else None
    return ResolvedModel(spec, weights, adapter, options, fp, base_fp, device=placement.device)


def _check_adapter(adapter: Path) -> None:
    try:
        cfg = json.loads((adapter / "adapter_config.json").read_text())
    except ValueError as e:
        raise UserError(f"invalid JSON: {e}", path=adapter / "adapter_config.json") from None
    if "peft_type" not in cfg:
        raise UserError("not a PEFT adapter config (no peft_type)", path=adapter / "adapter_config.json")
