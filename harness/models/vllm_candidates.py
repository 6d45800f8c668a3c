"""Base + adapters on one vLLM engine: `tunegate run -m vllm:BASE --adapter A --adapter B`.

Every candidate is its own `ResolvedModel` (own fingerprint, stored run and generation cache) and
its own `VllmBackend` view on one shared `VllmEngine`, which sends each request with the
candidate's `LoRARequest`: one engine start and one copy of the base weights for all of them.
Before anything is stored each adapter is checked as the transformers path checks it
(harness.models.adapter_check): it must fit the base (module sizes against the base's
config.json) and must change the model: max |Δ logprob| of the probe prompts' tokens between
the adapter and the base (an all-zero `lora_B` gives exactly 0), above the tolerance unless
`allow_noop`.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.models.adapter_check import PROBES, AdapterCheck, _config, _lora_b_zero, _lora_shapes, _same_name
from harness.models.adapters import DEFAULT_TOLERANCE, CandidateInfo, with_adapter
from harness.models.chat_template import choose_template
from harness.models.resolve import resolve_model
from harness.models.vllm_backend import VllmBackend, VllmCandidate
from harness.models.vllm_engine import VllmEngine

log = logging.getLogger(__name__)

MEASURE = "max |Δ logprob| of the probe prompts' tokens (vLLM prompt_logprobs)"
"""What `adapter_check.max_abs_dlogit` holds for a vLLM candidate (recorded beside it)."""


def open_vllm_candidates(
    base_raw: str,
    adapters: list[str],
    *,
    include_base: bool = True,
    allow_noop: bool = False,
    tolerance: float | None = None,
) -> list[VllmCandidate]:
    """Views for the base (first, when `include_base`) and each adapter, on one engine; every
    adapter checked before this returns (a bad one fails before anything is stored)."""
    tolerance = DEFAULT_TOLERANCE if tolerance is None else tolerance
    base_r = resolve_model(base_raw)
    if base_r.spec.kind != "vllm":
        raise UserError(f"{base_raw} is not a vllm: model", field="model")
    if base_r.adapter is not None:
        raise UserError(f"give the base without ?adapter= when listing adapters ({base_raw})", field="model")
    assert base_r.weights is not None
    resolved = [resolve_model(with_adapter(base_raw, a)) for a in adapters]  # bad folders fail first
    for r in resolved:
        assert r.adapter is not None
        check_fits(r.adapter, base_r.weights)
    shared = VllmEngine(base_r.weights, base_r.facts["engine"])
    base_tpl = shared.tokenizer.chat_template
    views: list[VllmCandidate] = []
    if include_base:
        views.append(
            VllmCandidate(base_r, shared, CandidateInfo("base", choose_template(None, None, base_tpl)))
        )
    for r in resolved:
        info = CandidateInfo("adapter", choose_template(None, r.adapter, base_tpl))
        views.append(VllmCandidate(r, shared, info))
    base_view = views[0] if include_base else VllmBackend(base_r, shared)
    for v in views:
        if v.resolved.adapter is not None:
            v.info.check = check_applies(v, base_view, tolerance, allow_noop)
    return views


def check_fits(adapter: Path, weights: Path) -> None:
    """Refuse an adapter made for another model, naming both: its LoRA modules must exist in the
    base (layer index below the base's layer count) with the base's hidden size on the side that
    meets the residual stream."""
    cfg = json.loads((weights / "config.json").read_text(encoding="utf-8"))
    hidden, layers = cfg.get("hidden_size"), cfg.get("num_hidden_layers")
    claimed = _config(adapter).get("base_model_name_or_path")
    desc = f"adapter {adapter} (made for {claimed or 'an unnamed base'})"
    base = f"{weights.name} (hidden size {hidden}, {layers} layers)"
    shapes = _lora_shapes(adapter) if _config(adapter).get("peft_type", "LORA") == "LORA" else {}
    for module, s in shapes.items():
        m = re.search(r"\.layers\.(\d+)\.", module)
        if m and layers is not None and int(m.group(1)) >= int(layers):
            raise UserError(f"{desc} does not fit the base {base}: module {module} is past its last layer")
        reads = module.endswith(("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj"))
        got = s.get("A", (None, None))[1] if reads else s.get("B", (None,))[0]
        if hidden is not None and (reads or module.endswith(("o_proj", "down_proj"))) and got != hidden:
            raise UserError(
                f"{desc} does not fit the base {base}: module {module} has size {got} where the "
                f"base has hidden size {hidden}"
            )
    if not _same_name(claimed, {str(weights)}):
        log.warning("adapter %s names base_model_name_or_path '%s', not %s", adapter, claimed, weights)


def probe_logprobs(view: VllmBackend) -> list[float]:
    """Each probe token's log-probability (every token after the first), for the view's adapter."""
    ids = [view.tokenizer(t, add_special_tokens=False)["input_ids"] for t in PROBES]
    scored = view.shared.score([(i[:-1], i[1:]) for i in ids], view.adapter_name)
    return [lp for lps, _ in scored for lp in lps]


def check_applies(view: VllmCandidate, base: VllmBackend, tolerance: float, allow_noop: bool) -> AdapterCheck:
    """max |Δ logprob| between the view's adapter and the base on the probes; a no-op is an
    error unless `allow_noop`."""
    t0 = time.perf_counter()
    adapter = view.resolved.adapter
    assert adapter is not None and base.resolved.weights is not None
    cfg: dict[str, Any] = _config(adapter)
    on, off = probe_logprobs(view), probe_logprobs(base)
    delta = max(abs(a - b) for a, b in zip(on, off))
    noop = delta <= tolerance
    lora = cfg.get("peft_type", "LORA") == "LORA"
    check = AdapterCheck(
        str(adapter),
        cfg.get("base_model_name_or_path"),
        _same_name(cfg.get("base_model_name_or_path"), {str(base.resolved.weights), base.resolved.spec.raw}),
        cfg.get("target_modules"),
        len(_lora_shapes(adapter)) if lora else 0,
        delta,
        tolerance,
        noop,
        allow_noop and noop,
        time.perf_counter() - t0,
    )
    view.info.extra["adapter_check_measure"] = MEASURE
    if noop and not allow_noop:
        why = " (its lora_B weights are all zero)" if lora and _lora_b_zero(adapter) else ""
        raise UserError(
            f"adapter {adapter} does not change the base: max |Δ logprob| {delta:.3g} on "
            f"{len(PROBES)} probe prompts through vLLM (tolerance {tolerance:g}){why}; its scores "
            "would be the base's. Pass --allow-noop-adapter to evaluate it anyway"
        )
    if noop:
        log.warning("adapter %s is a no-op (max |Δ logprob| %.3g); evaluated as allowed", adapter, delta)
    return check
