"""Which stored runs a report shows: run ids or models, resolved into a base and a candidate side."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.errors import UserError
from harness.gate.sides import runs_for
from harness.store import RunRecord, Store

if TYPE_CHECKING:
    from harness.gate import GateResult

Side = dict[str, RunRecord]
"""Suite name → run."""


@dataclass(frozen=True)
class ReportRuns:
    """The runs a report shows: one side per model, the first the baseline, each other one a
    candidate compared against it."""

    sides: list[Side]
    labels: list[str]
    """What each side is called on the page: model; base, candidate; or each model's short name."""
    gate: GateResult | None = None
    """The gate's result for a base and a candidate."""
    gates: list[GateResult | None] | None = None
    """Per candidate, with more than one candidate and a policy."""
    allow: frozenset[str] = frozenset()
    sweeps: tuple[str, ...] = ()
    """Checkpoint sweeps to draw over training steps (besides those the runs belong to)."""

    @property
    def suites(self) -> list[str]:
        return sorted({name for side in self.sides for name in side})

    @property
    def compared(self) -> bool:
        return len(self.sides) > 1

    @property
    def slots(self) -> int:
        """Per-example arrays hold max(2, sides) entries: slot 0 the base, slot 1 the candidate."""
        return max(2, len(self.sides))

    def runs_of(self, suite: str) -> list[RunRecord | None]:
        return [side.get(suite) for side in self.sides]


def labels_for(sides: list[Side]) -> list[str]:
    """model; base and candidate; or, with more candidates, each model's short name."""
    if len(sides) == 1:
        return ["model"]
    if len(sides) == 2:
        return ["base", "candidate"]
    return model_names([next(iter(s.values())) for s in sides])


def model_names(runs: list[RunRecord]) -> list[str]:
    """A short name per model, told apart where two are equal: an adapter's folder name, else
    the spec without its kind, folders and options (`hf:/m/SmolLM2?dtype=…` → SmolLM2)."""
    names = [short_spec(r.model_spec) for r in runs]
    for name in set(names):
        same = [k for k, n in enumerate(names) if n == name]
        if len(same) > 1:
            for k in same:
                names[k] = f"{name} ({runs[k].model_id[:10]})"
    seen: dict[str, int] = {}
    for k, name in enumerate(names):  # ids can share a prefix too: number what is still equal
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            names[k] = f"{name} #{seen[name]}"
    return names


def short_spec(spec: str) -> str:
    adapter = re.search(r"[?&]adapter=([^&]+)", spec)
    if adapter:
        return adapter.group(1).rstrip("/").rsplit("/", 1)[-1] or spec
    head = spec.split("?", 1)[0]
    head = head.split(":", 1)[1] if re.match(r"^[a-z]+:", head) else head
    head = head.split("@", 1)[0]  # openai:MODEL@URL
    return head.rstrip("/").rsplit("/", 1)[-1] or spec


def resolve_sides(store: Store, refs: list[str]) -> tuple[Side, Side | None]:
    """(base, candidate or None) from run ids (prefixes ok) and/or models.

    A model stands for its latest completed run per suite. Runs are grouped by model in the
    order given: the first model is the base, the second the candidate (as `compare` names
    them). Two run ids of one model on the same suite are also base then candidate.
    """
    if not refs:
        raise UserError("give at least one run id or model to report on")
    per_ref = [list(runs_for(store, [ref], "report").values()) for ref in refs]
    runs = [r for group in per_ref for r in group]
    models = list(dict.fromkeys(r.model_id for r in runs))
    if len(models) > 2:
        specs = ", ".join(dict.fromkeys(r.model_spec for r in runs))
        raise UserError(
            f"a report shows one model or a base and a candidate, but these runs are of "
            f"{len(models)} models ({specs}); give runs or models of at most two"
        )
    if len(refs) == 2 and len(runs) == 2 and runs[0].suite_id == runs[1].suite_id:
        return {runs[0].suite_name: runs[0]}, {runs[1].suite_name: runs[1]}
    sides: list[Side] = [{} for _ in models]
    for run in runs:
        side = sides[models.index(run.model_id)]
        other = side.get(run.suite_name)
        if other is not None and other.run_id != run.run_id:
            raise UserError(
                f"model {run.model_spec} has two runs of suite '{run.suite_name}' "
                f"({other.run_id}, {run.run_id}); give one of them"
            )
        side[run.suite_name] = run
    return sides[0], (sides[1] if len(sides) > 1 else None)
