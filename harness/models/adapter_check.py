""" "Did the adapter really apply?" — checked before an adapter run is scored.

Two checks, cheapest first:
- it fits: every LoRA module the adapter's weights name exists in the base, with the same
  input/output sizes (a different hidden size or a different architecture is refused, naming
  both models); its `base_model_name_or_path` is compared with the base's names too, but a
  differing name alone only warns (a hub id and a local or converted folder are often the same
  weights);
- it changes the model: on a few probe prompts, max |Δlogit| between the adapter on and every
  adapter off (all-zero `lora_B`, or modules that matched nothing, give exactly 0). At or below
  the tolerance it is a no-op: an error unless allowed. The value is recorded either way.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.models.resolve import ResolvedModel

log = logging.getLogger(__name__)

PROBES = (
    "What is the capital of France?",
    "Write one sentence about the sea.",
    "List three prime numbers.",
)


@dataclass(frozen=True)
class AdapterCheck:
    adapter: str
    base_model_name_or_path: str | None
    name_match: bool
    target_modules: Any
    n_modules: int
    max_abs_dlogit: float
    tolerance: float
    noop: bool
    allowed_noop: bool
    seconds: float

    def record(self) -> dict[str, Any]:
        return {
            "adapter": self.adapter,
            "base_model_name_or_path": self.base_model_name_or_path,
            "name_match": self.name_match,
            "target_modules": self.target_modules,
            "n_modules": self.n_modules,
            "max_abs_dlogit": self.max_abs_dlogit,
            "tolerance": self.tolerance,
            "noop": self.noop,
            "allowed_noop": self.allowed_noop,
            "seconds": round(self.seconds, 4),
        }


def _config(adapter: Path) -> dict[str, Any]:
    try:
        return json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(
            f"cannot read the adapter config: {e}", path=adapter / "adapter_config.json"
        ) from None


def _lora_shapes(adapter: Path) -> dict[str, dict[str, tuple[int, ...]]]:
    """module path in the base → {'A': shape, 'B': shape} from the saved weights (not loaded)."""
    from safetensors import safe_open

    path = adapter / "adapter_model.safetensors"
    if not path.is_file():
        raise UserError("adapter folder has no adapter_model.safetensors", path=adapter)
    out: dict[str, dict[str, tuple[int, ...]]] = {}
    with safe_open(str(path), framework="pt") as f:
        for key in f.keys():
            for part in ("A", "B"):
                tag = f".lora_{part}.weight"
                if key.endswith(tag):
                    module = key[: -len(tag)].removeprefix("base_model.model.")
                    out.setdefault(module, {})[part] = tuple(f.get_slice(key).get_shape())
    return out


def _base_names(base: ResolvedModel, model: Any) -> set[str]:
    assert base.weights is not None
    names = {str(base.weights), base.spec.raw.split("?")[0]}
    cfg_name = getattr(getattr(model, "config", None), "_name_or_path", None)
    if cfg_name:
        names.add(str(cfg_name))
    return names


def _same_name(adapter_name: str | None, names: set[str]) -> bool:
    """Same model by name: equal, or one folder/hub name is the start of the other (a converted
    or renamed folder keeps the model's name in front: SmolLM2-135M-Instruct.Q4_1-…)."""
    if not adapter_name:
        return True
    short = Path(adapter_name.rstrip("/")).name.lower()
    for n in names:
        other = Path(n.rstrip("/")).name.lower()
        if adapter_name == n or (short and other and (other.startswith(short) or short.startswith(other))):
            return True
    return False


def check_adapter_fits(adapter: Path, model: Any, base: ResolvedModel) -> None:
    """Refuse an adapter made for another model, naming both, before peft tries to load it."""
    cfg = _config(adapter)
    claimed = cfg.get("base_model_name_or_path")
    names = _base_names(base, model)
    base_desc = f"{base.spec.raw.split('?')[0]} (hidden size {_hidden(model)})"
    adapter_desc = f"adapter {adapter} (made for {claimed or 'an unnamed base'})"
    if cfg.get("peft_type", "LORA") != "LORA":
        return  # shapes below are LoRA's; other peft types are checked by the probe alone
    shapes = _lora_shapes(adapter)
    if not shapes:
        raise UserError(f"{adapter_desc} holds no LoRA weights", path=adapter)
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    modules = dict(inner.named_modules())
    missing = [m for m in shapes if m not in modules]
    if missing:
        raise UserError(
            f"{adapter_desc} does not fit the base {base_desc}: {len(missing)} of its "
            f"{len(shapes)} modules do not exist there (first: {missing[0]})"
        )
    for name, s in shapes.items():
        mod = modules[name]
        want_in, want_out = getattr(mod, "in_features", None), getattr(mod, "out_features", None)
        got_in = s.get("A", (None, None))[1]
        got_out = s.get("B", (None,))[0]
        if (want_in, want_out) != (got_in, got_out):
            hint = ""
            if got_in != want_in and want_in == _hidden(model):
                hint = f": it was made for hidden size {got_in}"
            raise UserError(
                f"{adapter_desc} does not fit the base {base_desc}{hint}; module {name} is "
                f"{want_in}→{want_out} in the base but {got_in}→{got_out} in the adapter"
            )
    if not _same_name(claimed, names):
        log.warning(
            "adapter %s names base_model_name_or_path '%s', not the base %s; its modules fit, "
            "so it is evaluated anyway",
            adapter,
            claimed,
            base.spec.raw.split("?")[0],
        )


def _hidden(model: Any) -> Any:
    return getattr(getattr(model, "config", None), "hidden_size", "?")


def probe_logits(view: Any) -> Any:
    """Logits at the real (unpadded) positions of the probe prompts, one batched forward on the
    view's model. Raw short texts: a LoRA update changes logits whatever the template, and a
    rendered chat prompt would cost several times more tokens."""
    import torch

    tok = view.tokenizer
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in PROBES]
    width = max(map(len, ids))
    pad = tok.pad_token_id
    dev = view.input_device()
    x = torch.tensor([i + [pad] * (width - len(i)) for i in ids], device=dev)
    mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i in ids], device=dev)
    model = view.model
    with torch.inference_mode():
        logits = model(input_ids=x, attention_mask=mask).logits.float()
    return logits[mask.bool()].cpu()


def check_adapter_applies(view: Any, shared: Any, tolerance: float, allow_noop: bool) -> AdapterCheck:
    """Max |Δlogit| between the view's adapter and the base on the probes; a no-op is an error
    unless `allow_noop`."""
    t0 = time.perf_counter()
    adapter = view.resolved.adapter
    cfg = _config(adapter)
    on = probe_logits(view)
    off = probe_logits(_BaseOf(view))  # same prompts, same template, adapters off
    delta = float((on - off).abs().max())
    noop = delta <= tolerance
    names = _base_names(view.shared.resolved, view.shared.loaded)
    check = AdapterCheck(
        str(adapter),
        cfg.get("base_model_name_or_path"),
        _same_name(cfg.get("base_model_name_or_path"), names),
        cfg.get("target_modules"),
        len(_lora_shapes(adapter)) if cfg.get("peft_type", "LORA") == "LORA" else 0,
        delta,
        tolerance,
        noop,
        allow_noop and noop,
        time.perf_counter() - t0,
    )
    if noop and not allow_noop:
        why = " (its lora_B weights are all zero)" if _lora_b_zero(adapter) else ""
        raise UserError(
            f"adapter {adapter} does not change the base: max |Δlogit| {delta:.3g} on "
            f"{len(PROBES)} probe prompts (tolerance {tolerance:g}){why}; its scores would be the "
            "base's. Pass --allow-noop-adapter to evaluate it anyway"
        )
    if noop:
        log.warning("adapter %s is a no-op (max |Δlogit| %.3g); evaluated as allowed", adapter, delta)
    return check


class _BaseOf:
    """The view with every adapter off (same tokenizer and template)."""

    def __init__(self, view: Any) -> None:
        self._view = view
        self.tokenizer = view.tokenizer

    def render_chat(self, messages: list[dict[str, str]]) -> str:
        return self._view.render_chat(messages)

    def input_device(self) -> Any:
        return self._view.input_device()

    @property
    def model(self) -> Any:
        return self._view.shared.activate(None)


def _lora_b_zero(adapter: Path) -> bool:
    from safetensors import safe_open

    with safe_open(str(adapter / "adapter_model.safetensors"), framework="pt") as f:
        keys = [k for k in f.keys() if ".lora_B." in k]
        return bool(keys) and all(not f.get_tensor(k).any() for k in keys)
