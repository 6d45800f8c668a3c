"""One baseline against N candidates: a gate verdict per candidate and a leaderboard.

Candidates are the `--candidate` refs grouped by model (several run ids of one model are one
candidate, as before); `--require any` passes when at least one candidate passes, `all` when
every one does. The leaderboard is suites × metrics × candidates: each candidate's value and its
paired delta vs the baseline with the 95% CI (harness.results.compare_runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from harness.errors import UserError
from harness.gate.evaluate import GateResult, run_gate
from harness.gate.sides import runs_for
from harness.store import Store

Require = Literal["any", "all"]


@dataclass(frozen=True)
class Candidate:
    label: str
    """What the user gave (joined when several refs are one model)."""
    model_id: str
    refs: list[str]


def group_candidates(store: Store, refs: list[str]) -> list[Candidate]:
    """The refs grouped by the model their runs belong to, in the order given."""
    groups: dict[str, list[str]] = {}
    from harness.gate.load_rules import load_model_of

    for ref in refs:
        load_model = load_model_of(store, ref)  # a load run, or a model measured only under load
        if load_model is not None:
            groups.setdefault(load_model, []).append(ref)
            continue
        runs = runs_for(store, [ref], "candidate")
        models = {r.model_id for r in runs.values()}
        if len(models) != 1:
            raise UserError(f"candidate '{ref}' stands for runs of {len(models)} models; give one")
        groups.setdefault(models.pop(), []).append(ref)
    return [Candidate(", ".join(v), k, v) for k, v in groups.items()]


def run_leaderboard(
    store: Store,
    policy: Any,
    doc: Any,
    baseline: list[str],
    candidates: list[Candidate],
    suites: list[str] | None,
) -> list[tuple[Candidate, GateResult]]:
    """The policy applied to each candidate against the same baseline."""
    return [(c, run_gate(store, policy, doc, baseline, c.refs, suites)) for c in candidates]


def verdict(results: list[tuple[Candidate, GateResult]], require: Require) -> bool:
    passed = [r.passed for _, r in results]
    return all(passed) if require == "all" else any(passed)


@dataclass(frozen=True)
class Cell:
    value: float
    delta: float
    ci_low: float
    ci_high: float
    improved: bool | None
    """True/False when the CI excludes 0 (better/worse), None otherwise."""
    n: int
    run_id: str


@dataclass(frozen=True)
class Row:
    suite: str
    metric: str
    baseline: float
    higher_is_better: bool
    cells: list[Cell | None]
    """One per candidate (None: the candidate has no run of this suite)."""


def leaderboard(
    store: Store, baseline: list[str], candidates: list[Candidate]
) -> tuple[dict, list[dict], list[Row]]:
    """(baseline runs by suite, candidate runs by suite per candidate, rows) from stored runs."""
    from harness.results import compare_runs

    base = runs_for(store, baseline, "baseline")
    sides = [runs_for(store, c.refs, "candidate") for c in candidates]
    rows: dict[tuple[str, str], Row] = {}
    for suite in sorted(base):
        for k, side in enumerate(sides):
            if suite not in side:
                continue
            _, _, comps = compare_runs(store, base[suite].run_id, side[suite].run_id, k=0)
            hib = {m["metric"]: bool(m["higher_is_better"]) for m in store.run_metrics(base[suite].run_id)}
            for c in comps:
                p = c.paired
                row = rows.setdefault(
                    (suite, c.metric),
                    Row(suite, c.metric, p.baseline, hib.get(c.metric, True), [None] * len(sides)),
                )
                row.cells[k] = Cell(
                    p.candidate, p.delta, p.ci_low, p.ci_high, p.improved, p.n, side[suite].run_id
                )
    if not rows:
        raise UserError("the baseline and the candidates have no suite in common")
    return base, sides, list(rows.values())
