"""`tunegate merge`: fold an adapter into its base and save a standalone safetensors folder.

The saved folder is checked against base+adapter on probe prompts (max |Δlogit| ≤ tolerance),
so a merge that silently changed the model never ships. Merging and the check run in float64
(the saved weights are in the spec's dtype), so it needs memory for a float64 copy of the
model. QLoRA adapters are merged into the full-precision base: merging into 4-bit weights
would round the update away.

Merging runs on the CPU unless the spec names a device (`…?device=cuda&adapter=DIR`): a float64
copy of a 7B model is 56 GB, more than most GPUs hold, and merging is cheap next to evaluating.
The saved dtype is the spec's explicit `dtype`, else float32 (never what `dtype=auto` picks on
this machine, so the merged folder's content, and its fingerprint, do not depend on the machine).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.models import ResolvedModel, resolve_model
from harness.store import Store
from harness.store.queries_training import adapter_model_spec

PROBES = [
    "What does LoRA change in a model?",
    "Write one sentence about the sea.",
]


@dataclass(frozen=True)
class MergeResult:
    out: Path
    model_id: str
    candidate_model_id: str
    max_abs_diff: float


def find_candidate(store: Store, ref: str) -> str:
    """A model spec for `ref`: a spec with ?adapter=, a model id, or a training run id."""
    if "adapter=" in ref:
        return ref
    spec = adapter_model_spec(store, ref)
    if spec is None:
        raise UserError(
            f"'{ref}' is not an adapter model spec (…?adapter=DIR) nor an adapter model id or training "
            f"run id in {store.path}"
        )
    return spec


def merge_adapter(spec: str, out: Path, *, tolerance: float = 1e-4, db: Path | None = None) -> MergeResult:
    """Merge in float64, save in the spec's dtype, reload the saved folder and compare logits.

    Both sides of the check run in float64: in float32, 30 layers of rounding alone move
    logits of magnitude ~30 by ~1e-4, which would hide a wrong merge or flag a right one.
    """
    import gc

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    resolved = resolve_model(spec)
    if resolved.adapter is None:
        raise UserError(f"model spec '{spec}' has no adapter to merge (add ?adapter=DIR)")
    out = out.expanduser().resolve()
    if out.exists() and any(out.iterdir()):
        raise UserError(f"output folder {out} exists and is not empty", field="out")
    asked = resolved.spec.options.get("dtype", "auto")
    dtype = getattr(torch, "float32" if asked == "auto" else asked)
    device = merge_device(resolved)
    tok = AutoTokenizer.from_pretrained(resolved.weights)
    base = AutoModelForCausalLM.from_pretrained(resolved.weights, dtype=torch.float64)
    if device != "cpu":
        base = base.to(device)
    model = PeftModel.from_pretrained(base, str(resolved.adapter)).eval()
    expected = _logits(model, tok, torch)
    merged = model.merge_and_unload().to(dtype)
    tmp = out.parent / f".{out.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    del model, merged, base
    gc.collect()
    reloaded = AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float64).eval()
    if device != "cpu":
        reloaded = reloaded.to(device)
    diff = float((_logits(reloaded, tok, torch) - expected).abs().max())
    if diff > tolerance:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"merged model differs from base+adapter by {diff:.2e} > {tolerance:.0e}; not saved")
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    merged_id = _register(db, resolved, out) if db else resolve_model(f"hf:{out}").model_id
    return MergeResult(out, merged_id, resolved.model_id, diff)


def merge_device(resolved: ResolvedModel) -> str:
    """The CPU, unless the spec asked for a device (then where choose_placement put it)."""
    return "cpu" if resolved.spec.options.get("device", "auto") == "auto" else resolved.device


def _logits(model: Any, tok: Any, torch: Any) -> Any:
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    ids = [tok(p, add_special_tokens=False)["input_ids"] for p in PROBES]
    width = max(map(len, ids))
    dev = next(model.parameters()).device
    input_ids = torch.tensor([x + [pad] * (width - len(x)) for x in ids], device=dev)
    mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids], device=dev)
    with torch.inference_mode():
        logits = model(input_ids=input_ids, attention_mask=mask).logits.float().cpu()
    return logits * mask.unsqueeze(-1).cpu()  # padded positions are not part of the comparison


def _register(db: Path, candidate: ResolvedModel, out: Path) -> str:
    """The merged folder as a model whose base_model_id is the candidate it came from."""
    from trainers.register import register_models

    merged = resolve_model(f"hf:{out}")
    with Store(db) as store:
        register_models(store, candidate)
        store.upsert_model(
            merged.model_id,
            merged.spec.raw,
            merged.spec.kind,
            merged.fingerprint,
            base_model_id=candidate.model_id,
            load_options=merged.options,
        )
    return merged.model_id
