"""From a parsed spec to the concrete files, fingerprint and model id (no weights loaded)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.models.fingerprint import fingerprint, predictions_fingerprint
from harness.models.gguf import converted_folder, smollm2_gguf
from harness.models.spec import ModelSpec, parse_model_spec


@dataclass(frozen=True)
class ResolvedModel:
    """Everything needed to load a model and to identify its outputs in the store."""

    spec: ModelSpec
    weights: Path
    adapter: Path | None
    options: dict[str, Any]
    fingerprint: str
    base_fingerprint: str | None
    """Fingerprint of the base without the adapter (lineage)."""

    @property
    def model_id(self) -> str:
        return model_id_for(self.fingerprint)

    @property
    def base_model_id(self) -> str | None:
        return model_id_for(self.base_fingerprint) if self.base_fingerprint else None


def model_id_for(fp: str) -> str:
    return "m-" + fp[:12]


def resolve_model(raw: str | ModelSpec) -> ResolvedModel:
    """Resolve a spec; converts GGUF files once (cached) so every load is a fast HF load."""
    spec = parse_model_spec(raw) if isinstance(raw, str) else raw
    if spec.kind == "predictions":  # no weights: the file's content is the model's identity
        fp = predictions_fingerprint(Path(spec.path), spec.options)
        return ResolvedModel(spec, Path(spec.path), None, dict(spec.options), fp, None)
    if spec.kind == "alias":
        weights = converted_folder(smollm2_gguf())
    elif spec.kind == "gguf":
        weights = converted_folder(Path(spec.path))
    else:
        weights = Path(spec.path)
    adapter = Path(spec.adapter) if spec.adapter else None
    if adapter is not None:
        _check_adapter(adapter)
    fp = fingerprint(weights, adapter, spec.options)
    base_fp = fingerprint(weights, None, spec.options) if adapter else None
    return ResolvedModel(spec, weights, adapter, dict(spec.options), fp, base_fp)


def _check_adapter(adapter: Path) -> None:
    try:
        cfg = json.loads((adapter / "adapter_config.json").read_text())
    except ValueError as e:
        raise UserError(f"invalid JSON: {e}", path=adapter / "adapter_config.json") from None
    if "peft_type" not in cfg:
        raise UserError("not a PEFT adapter config (no peft_type)", path=adapter / "adapter_config.json")
