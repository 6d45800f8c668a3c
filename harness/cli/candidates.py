"""Evaluating a base and many adapters on one base load (`run --adapter`, models files, sweeps).

    tunegate run -m smollm2 --adapter out/a --adapter out/b -s finetune-qa
    tunegate run -m candidates.yaml -s finetune-qa     # base: smollm2 / adapters: [out/a, out/b]

Every view is its own stored run; every adapter is checked to really apply before anything is
stored (harness.models.adapter_check).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from harness.cli.common import console, console_err, progress_bars
from harness.config import LocatedYaml, Strict
from harness.errors import UserError


class CandidatesFile(Strict):
    """A models file listing one base and its adapters."""

    base: str
    """Model spec of the base (a local transformers model, with load options)."""
    adapters: list[str] = Field(min_length=1)
    """Adapter folders (relative to this file)."""
    include_base: bool = True
    """Evaluate the base too, as the baseline of the leaderboard."""


def read_candidates_file(path: Path) -> tuple[str, list[str], bool] | None:
    """(base, adapters, include_base) when `path` is a YAML models file with `adapters:`; else None."""
    if not str(path).endswith((".yaml", ".yml")) or not path.is_file():
        return None
    doc = LocatedYaml(path)
    if not isinstance(doc.data, dict) or "adapters" not in doc.data:
        return None
    cfg = doc.validate(CandidatesFile)
    adapters = []
    for i, a in enumerate(cfg.adapters):
        p = Path(a).expanduser()
        p = p if p.is_absolute() else path.parent / p
        if not (p / "adapter_config.json").is_file():
            raise doc.error(f"adapter folder {p} has no adapter_config.json", ("adapters", i))
        adapters.append(str(p.resolve()))
    return cfg.base, adapters, cfg.include_base


def needs_shared(spec: Any) -> bool:
    """A local model with an adapter or a chat template option: evaluated through a view (the
    adapter is checked; the template is recorded and compared with the trained one)."""
    return spec.kind in ("hf", "gguf", "alias") and bool(spec.adapter or spec.options.get("chat_template"))


def open_views(
    model: str,
    adapters: list[str],
    *,
    include_base: bool,
    allow_noop: bool,
    tolerance: float | None = None,
) -> list[Any]:
    """The views to evaluate: `model` may itself carry ?adapter= (then only that adapter)."""
    from harness.models import parse_model_spec
    from harness.models.adapters import DEFAULT_TOLERANCE, open_candidates, with_adapter

    spec = parse_model_spec(model)
    if spec.adapter and adapters:
        raise UserError("give the base without ?adapter= when listing --adapter", field="model")
    if spec.adapter:
        adapters, include_base = [spec.adapter], False
        model = with_adapter(spec.raw, None)
    for a in adapters:
        if not (Path(a).expanduser() / "adapter_config.json").is_file():
            raise UserError(f"adapter folder {a} has no adapter_config.json", field="adapter")
    return open_candidates(
        model,
        [str(Path(a).expanduser().resolve()) for a in adapters],
        include_base=include_base,
        allow_noop=allow_noop,
        tolerance=DEFAULT_TOLERANCE if tolerance is None else tolerance,
    )


def load_suites(suites: list[str]) -> list[Any]:
    """Every suite parsed and validated (before any model loads)."""
    from suites import load_suite

    return [load_suite(s) for s in suites]


def evaluate_views(
    views: list[Any],
    loaded: list[Any],
    db: Path,
    options: Any,
    progress: bool = True,
    mixed: bool = True,
) -> list[tuple[Any, list[Any]]]:
    """Every suite on every view, each a stored run; inputs are all checked before the store opens.

    `mixed`: the candidates' greedy generations go through the shared model together, several
    candidates per batch (harness.runner.mixed); each run is then scored and stored on its own.
    """
    from dataclasses import replace

    from harness.runner import run_suite
    from harness.runner.capabilities import check_capabilities
    from harness.runner.mixed import can_mix, prefetch_generations
    from harness.store import Store

    if options.resume and len(views) != 1:
        raise UserError("--resume continues one run: give one model, without --adapter")
    for v in views:
        for s in loaded:
            check_capabilities(v, s)
    runs: list[list[Any]] = [[] for _ in views]
    with Store(db, must_exist=bool(options.resume)) as store, progress_bars(progress) as start:
        for s in loaded:
            option = s.template_option() if hasattr(s, "template_option") else None
            for v in views:  # before the prefetch: the template is part of what is sent
                if hasattr(v, "use_suite_template"):
                    v.use_suite_template(option)
            pre = (
                prefetch_generations(store, views, s, options, start)
                if mixed and can_mix(views, s, options)
                else None
            )
            for k, v in enumerate(views):
                if pre is not None and pre.batches:
                    v.info.extra["mixed_batches"] = {"candidates": len(views), "batches": pre.batches}
                else:
                    v.info.extra.pop("mixed_batches", None)
                o = run_suite(store, v, s, options, on_start=start, fresh=pre.fresh[k] if pre else None)
                if getattr(v, "info", None) is not None and v.info.template is not None:
                    v.info.used_templates.append(v.info.template)
                runs[k].append(replace(o, model_calls=o.model_calls + pre.calls[k]) if pre else o)
    return list(zip(views, runs))


def describe_view(v: Any) -> str:
    """One line per model: what it is, and what its checks measured."""
    info = v.info
    line = f"[bold]{info.role}[/] {v.resolved.model_id}  {v.resolved.spec.raw}"
    if info.check is not None:
        c = info.check
        line += f"  max |Δlogit| {c.max_abs_dlogit:.3g}" + (" [yellow](no-op, allowed)[/]" if c.noop else "")
    if any(t.match is False for t in info.templates()):
        line += "  [bold yellow]chat template differs from training[/]"
    return line


def print_outcomes(results: list[tuple[Any, list[Any]]], db: Path) -> None:
    for v, outs in results:
        console.print(describe_view(v), highlight=False, soft_wrap=True)
        for o in outs:
            console.print(
                f"  [bold]{o.run_id}[/]  {o.suite}: {o.n_examples} examples ({o.n_new} done now, "
                f"{o.n_cached} from the generation cache; {o.n_errors} errors; {o.model_calls} model calls)",
                highlight=False,
            )
    loads = {id(v.shared): v.shared.loads for v, _ in results if hasattr(v.shared, "loads")}
    if len(results) > 1:
        console.print(f"{len(results)} models on {sum(loads.values())} base load(s)", highlight=False)
    for v, _ in results:
        for t in (t for t in v.info.templates() if t.match is False):
            console_err.print(
                f"[bold yellow]warning[/]: {v.resolved.spec.raw} was evaluated with a chat template "
                f"({t.source}, {str(t.used_sha256)[:12]}) other than the one it was trained with "
                f"({t.trained_source}, {str(t.trained_sha256)[:12]}); add ?chat_template=trained "
                "to the model, or chat_template: trained to the suite",
                highlight=False,
                soft_wrap=True,
            )
    console.print(f"see: tunegate show RUN_ID --db {db}")
