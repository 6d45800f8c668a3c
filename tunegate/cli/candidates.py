"""What `run --adapter`, a models file and `sweep` print: one line per candidate, its runs, and
the chat-template warnings. The evaluation itself is `harness.evaluate`.

    tunegate run -m smollm2 --adapter out/a --adapter out/b -s finetune-qa
    tunegate run -m candidates.yaml -s finetune-qa     # base: smollm2 / adapters: [out/a, out/b]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.evaluate import Evaluated
from harness.models.base import Backend, CandidateBackend
from harness.models.spec import ModelSpec
from tunegate.cli.common import console, console_err


def describe_view(v: Backend) -> str:
    """One line per model: what it is, and what its checks measured."""
    line = f"{v.resolved.model_id}  {v.resolved.spec.raw}"
    if not isinstance(v, CandidateBackend):
        return line
    info = v.info
    line = f"[bold]{info.role}[/] {line}"
    if info.check is not None:
        c = info.check
        line += f"  max |Δlogit| {c.max_abs_dlogit:.3g}" + (" [yellow](no-op, allowed)[/]" if c.noop else "")
    if any(t.match is False for t in info.templates()):
        line += "  [bold yellow]chat template differs from training[/]"
    return line


def print_outcomes(results: Sequence[Evaluated], db: Path) -> None:
    """Every candidate, its runs, how many base loads they took, and template warnings."""
    for v, outs in results:
        console.print(describe_view(v), highlight=False, soft_wrap=True)
        for o in outs:
            console.print(
                f"  [bold]{o.run_id}[/]  {o.suite}: {o.n_examples} examples ({o.n_new} done now, "
                f"{o.n_cached} from the generation cache; {o.n_errors} errors; {o.model_calls} model calls)",
                highlight=False,
            )
    if len(results) > 1:
        loads = {id(s): s.loads for s in (_shared(v) for v, _ in results) if s is not None}
        console.print(f"{len(results)} models on {sum(loads.values())} base load(s)", highlight=False)
    for v, _ in results:
        if not isinstance(v, CandidateBackend):
            continue
        for t in (t for t in v.info.templates() if t.match is False):
            console_err.print(
                f"[bold yellow]warning[/]: {v.resolved.spec.raw} was evaluated with a chat template "
                f"({t.source}, {str(t.used_sha256)[:12]}) other than the one it was trained with "
                f"({t.trained_source}, {str(t.trained_sha256)[:12]}); add ?chat_template=trained "
                "to the model, or chat_template: trained to the suite",
                highlight=False,
                soft_wrap=True,
            )
    print_see(results, db)


def print_see(results: Sequence[Evaluated], db: Path) -> None:
    """Where to look next: the run just made (the first of them when there are several)."""
    ids = [o.run_id for _, outs in results for o in outs]
    if not ids:
        return
    more = f"  (and {', '.join(ids[1:])})" if len(ids) > 1 else ""
    console.print(f"see: tunegate show {ids[0]} --db {db}{more}", highlight=False, soft_wrap=True)


def _shared(v: Backend) -> Any:
    """The loaded base a candidate view shares (transformers' SharedBase, vLLM's engine): what
    counts base loads. Read by attribute: each host keeps its own class."""
    if not isinstance(v, CandidateBackend):
        return None
    shared = getattr(v, "shared", None)
    return shared if isinstance(getattr(shared, "loads", None), int) else None


def needs_shared(spec: ModelSpec) -> bool:
    """A local model with an adapter or a chat template option: `run` opens it through its adapter
    host (kept for callers that open a model the way `run` does; see harness.evaluate.open_models)."""
    from harness.models.registry import is_local

    return is_local(spec.kind) and bool(spec.adapter or spec.options.get("chat_template"))


def open_views(
    model: str, adapters: list[str], *, include_base: bool, allow_noop: bool, tolerance: float | None = None
) -> list[Backend]:
    """The candidate views `run` evaluates for `model` and `adapters` (harness.evaluate.open_candidates)."""
    from harness.evaluate import Models, open_candidates
    from harness.models import parse_model_spec

    models = Models(model, tuple(adapters), include_base, allow_noop, tolerance)
    return open_candidates(parse_model_spec(model), adapters, include_base=include_base, models=models)
