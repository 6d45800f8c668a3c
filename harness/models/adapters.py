"""Many adapters on one base load: one transformers base wrapped once in a peft `PeftModel`,
each adapter attached with `load_adapter` and switched on with `set_adapter` before each call.

Every adapter (and the base itself) is its own `ResolvedModel` with its own fingerprint, so each
gets its own stored run and its own generation cache; the backends here are light views that
share the loaded model. Before anything is scored each adapter is checked to really apply
(harness.models.adapter_check).

    views = open_candidates("smollm2", ["out/a", "out/b"])   # base + two adapters, one load
    for v in views: run_suite(store, v, suite, options)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl

from harness.errors import UserError
from harness.models.adapter_check import AdapterCheck, check_adapter_applies, check_adapter_fits
from harness.models.chat_template import TemplateChoice, choose_template
from harness.models.hf import HFModel
from harness.models.resolve import ResolvedModel, resolve_model

log = logging.getLogger(__name__)

DEFAULT_TOLERANCE = 1e-4
"""Max |Δlogit| at or below which an adapter counts as a no-op. An all-zero lora_B, or modules
that matched nothing, give exactly 0; a few optimizer steps already move logits by > 1e-3."""


def with_adapter(raw: str, adapter: str | Path | None) -> str:
    """The spec `raw` with its adapter replaced by `adapter` (None: removed); options kept."""
    base, _, query = raw.partition("?")
    params = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "adapter"]
    if adapter is not None:
        params.append(("adapter", str(adapter)))
    return base + ("?" + "&".join(f"{k}={v}" for k, v in params) if params else "")


def _drop(raw: str, key: str = "chat_template") -> str:
    base, _, query = raw.partition("?")
    params = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != key]
    return base + ("?" + "&".join(f"{k}={v}" for k, v in params) if params else "")


_MIXED = "\0mixed"
"""`SharedBase.active` after a mixed batch: no single adapter is set, every layer is on."""


class SharedBase:
    """One loaded base model, wrapped in a PeftModel once the first adapter is attached."""

    def __init__(self, resolved: ResolvedModel) -> None:
        if resolved.adapter is not None:
            raise ValueError("SharedBase takes the base without an adapter")
        self.hf = HFModel(resolved)
        self.resolved = resolved
        self.loads = 0
        """How many times base weights were loaded (one, however many adapters)."""
        self.peft: Any = None
        self.names: dict[Path, str] = {}
        self.active: str | None = None
        self._base_probe: list[Any] | None = None

    @property
    def loaded(self) -> Any:
        """The base model (the PeftModel once adapters are attached)."""
        if self.hf._model is None:
            self.hf._model = self.hf._load()
            self.loads += 1
        return self.peft if self.peft is not None else self.hf._model

    def attach(self, adapter: Path) -> str:
        """Load `adapter` next to the others (once); its peft adapter name."""
        if adapter in self.names:
            return self.names[adapter]
        name = f"a{len(self.names)}"
        model = self.loaded
        if self.peft is None:
            from peft import PeftModel

            self.peft = PeftModel.from_pretrained(model, str(adapter), adapter_name=name)
            self.peft.eval()
        else:
            self.peft.load_adapter(str(adapter), adapter_name=name)
        self.names[adapter] = name
        # load_adapter leaves the active adapter (and disabled layers) as they were: make this one live
        self.peft.base_model.enable_adapter_layers()
        self.peft.set_adapter(name)
        self.active = name
        return name

    def generate_mixed(
        self, names: Sequence[str | None], batch_ids: list[list[int]], params: Any
    ) -> list[tuple[str, int]]:
        """One batch whose rows belong to different adapters (None: the base), in one forward per
        step: peft's mixed-adapter batches (`adapter_names`, "__base__" for the base rows)."""
        import torch

        model = self.loaded
        if self.peft is None:
            raise ValueError("mixed batches need at least one attached adapter")
        # every adapter layer on: peft picks each row's adapter by name
        self.peft.base_model.enable_adapter_layers()
        self.active = _MIXED
        rows = [n if n is not None else "__base__" for n in names]
        return self.hf._generate_batch(batch_ids, params, torch, model=model, adapter_names=rows)

    def activate(self, name: str | None) -> Any:
        """The shared model with adapter `name` on (None: every adapter off, i.e. the base)."""
        model = self.loaded
        if self.peft is None or name == self.active:
            return model
        if name is None:
            self.peft.base_model.disable_adapter_layers()
        else:
            if self.active is None:  # after _MIXED every layer is on already
                self.peft.base_model.enable_adapter_layers()
            self.peft.set_adapter(name)
        self.active = name
        return model


@dataclass
class CandidateInfo:
    """What is recorded with each run of a view (runs.config.backend.candidate)."""

    role: str
    """base | adapter | checkpoint | live"""
    template: TemplateChoice | None = None
    check: AdapterCheck | None = None
    sweep: dict[str, Any] | None = None
    """step, sweep_id, checkpoint folder, training_run_id, losses at that step."""
    extra: dict[str, Any] = field(default_factory=dict)
    spec_template: str | None = None
    """The model spec's `?chat_template=` (it wins over a suite's `chat_template`)."""
    used_templates: list[TemplateChoice] = field(default_factory=list)
    """The template of each run evaluated so far (a suite may pick its own)."""

    def templates(self) -> list[TemplateChoice]:
        """The distinct templates this candidate was evaluated with (its own if no run yet)."""
        seen = self.used_templates or ([self.template] if self.template is not None else [])
        return list({id(t): t for t in seen}.values())

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, **self.extra}
        if self.template is not None:
            out["chat_template"] = self.template.record()
        if self.check is not None:
            out["adapter_check"] = self.check.record()
        if self.sweep is not None:
            out["sweep"] = self.sweep
        return out


class AdapterView(HFModel):
    """A backend for the base or one adapter of a `SharedBase`: HFModel's batching, prompts and
    scoring, on the shared model with this view's adapter switched on before every call."""

    def __init__(
        self,
        shared: SharedBase,
        resolved: ResolvedModel,
        adapter_name: str | None,
        info: CandidateInfo,
    ) -> None:
        # HFModel.__init__ would load another tokenizer: share the base's instead
        self.resolved = resolved
        self.tokenizer = shared.hf.tokenizer
        self.calls = {"generate": 0, "forward": 0}
        self._batchers = {}
        self.shared = shared
        self.adapter_name = adapter_name
        self.info = info
        self._own_template = info.template

    @property
    def _model(self) -> Any:  # HFModel.input_device reads it
        return None if self.shared.hf._model is None else self.shared.loaded

    @property
    def model(self) -> Any:
        return self.shared.activate(self.adapter_name)

    def use_suite_template(self, option: str | None) -> TemplateChoice | None:
        """Pick the template for the next run: the suite's `chat_template` (`trained`, `base`, a
        file) unless the model spec named one; None restores the view's own choice."""
        if option is None or self.info.spec_template is not None:
            self.info.template = self._own_template
        else:
            adapter = self.resolved.adapter
            if option == "trained" and adapter is None:
                option = "base"  # the base was trained with its own template
            tpl = choose_template(option, adapter, self.tokenizer.chat_template)
            self.info.template = replace(tpl, source=tpl.source.replace("option ", "suite ", 1))
        return self.info.template

    def render_chat(self, messages: list[dict[str, str]]) -> str:
        tpl = self.info.template
        if tpl is None or tpl.text is None:
            return super().render_chat(messages)
        return self.tokenizer.apply_chat_template(
            messages, chat_template=tpl.text, tokenize=False, add_generation_prompt=True
        )

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "candidate": self.info.record()}


def _hosted_here(kind: str) -> bool:
    """A spec kind whose registry entry names this module as its adapter host (transformers)."""
    from harness.models.registry import BACKENDS

    try:
        return BACKENDS.for_kind(kind).candidates == f"{__name__}:open_candidates"
    except KeyError:
        return False


def open_candidates(
    base: str | ResolvedModel,
    adapters: Sequence[str | Path],
    *,
    include_base: bool = True,
    allow_noop: bool = False,
    tolerance: float = DEFAULT_TOLERANCE,
    roles: Sequence[str] | None = None,
    shared: SharedBase | None = None,
) -> list[AdapterView]:
    """Views for the base (first, when `include_base`) and each adapter, on one base load.

    Every adapter is checked before this returns, so a bad one fails before anything is
    stored: it must fit the base (module names and shapes) and must change the logits on the
    probe prompts by more than `tolerance` (unless `allow_noop`; the measured value is recorded
    either way).
    """
    given = resolve_model(base) if isinstance(base, str) and "chat_template=" not in base else None
    raw = base if isinstance(base, str) else base.spec.raw
    option = parse_qs(raw.partition("?")[2]).get("chat_template", [None])[0]
    # the template is each view's prompt matter; the shared load is the base without it
    base_r = given or (base if not isinstance(base, str) and not option else resolve_model(_drop(raw)))
    if base_r.adapter is not None:
        raise UserError(
            f"give the base without ?adapter= when listing adapters ({base_r.spec.raw})", field="model"
        )
    if base_r.weights is None or not _hosted_here(base_r.spec.kind):
        raise UserError(
            f"adapters are attached to a local transformers model; {base_r.spec.raw} is not one",
            field="model",
        )
    shared = shared or SharedBase(base_r)
    views: list[AdapterView] = []
    if include_base:
        tpl = choose_template(option, None, shared.hf.tokenizer.chat_template)
        base_view = resolve_model(raw) if option else base_r
        views.append(AdapterView(shared, base_view, None, CandidateInfo("base", tpl, spec_template=option)))
    specs = [with_adapter(raw, str(a)) for a in adapters]
    resolved = [resolve_model(s) for s in specs]  # bad folders fail before the weights load
    for k, r in enumerate(resolved):
        assert r.adapter is not None
        check_adapter_fits(r.adapter, shared.loaded, base_r)  # names the mismatch before peft loads it
        name = shared.attach(r.adapter)
        tpl = choose_template(option, r.adapter, shared.hf.tokenizer.chat_template)
        role = roles[k] if roles else "adapter"
        view = AdapterView(shared, r, name, CandidateInfo(role, tpl, spec_template=option))
        view.info.check = check_adapter_applies(view, shared, tolerance, allow_noop)
        views.append(view)
    return views
