"""The HTML score report: one self-contained file rendered from the store alone.

html = render_report(store, ["r-1a2b", "r-3c4d"], policy="policy.yaml")
write_report("tunegate.duckdb", ["smollm2", "smollm2?adapter=out"], "report.html")
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import UserError
from harness.gate import GateResult
from harness.store import RunRecord, Store
from reports.sides import ReportRuns

__all__ = ["render_report", "write_report"]


def render_report(
    store: Store,
    refs: list[str] | None = None,
    *,
    policy: str | Path | None = None,
    gate: GateResult | None = None,
    allow: frozenset[str] | set[str] = frozenset(),
    sweeps: list[str] | None = None,
) -> str:
    """The report as an HTML string.

    `refs` are run ids (prefixes ok) or models (their latest completed run per suite); the
    first model is the base, the second the candidate; with more models every other one is a
    candidate against the first (each gated with `policy`), side by side in every section.
    With `gate` (a result already computed) the sides are the gate's; with `policy` the gate is
    applied to `refs`' runs. `sweeps`: checkpoint sweeps to draw over training steps too.
    """
    from reports.render import render_html
    from reports.sides import ReportRuns, labels_for, resolve_sides

    allowed = frozenset(allow)
    if gate is None and refs:
        from harness.gate.leaderboard import group_candidates

        groups = group_candidates(store, list(refs))
        if len(groups) > 2:
            return render_html(store, _many(store, groups, policy, allowed, sweeps), str(store.path))
    cand: dict[str, RunRecord] | None
    if gate is not None:
        base, cand = gate.baseline, gate.candidate
        allowed |= gate.allowed
    else:
        base, cand = resolve_sides(store, list(refs or []))
        if policy is not None:
            gate = _apply_policy(store, policy, base, cand)
    sides = [base] if cand is None else [base, cand]
    runs = ReportRuns(sides, labels_for(sides), gate=gate, allow=allowed, sweeps=tuple(sweeps or ()))
    return render_html(store, runs, str(store.path))


def write_report(
    db: str | Path | Store,
    refs: list[str] | None,
    out: str | Path,
    *,
    policy: str | Path | None = None,
    gate: GateResult | None = None,
    allow: frozenset[str] | set[str] = frozenset(),
    sweeps: list[str] | None = None,
) -> Path:
    """Render the report from the store `db` (a path or an open Store) and write it to `out`."""
    if isinstance(db, Store):
        html = render_report(db, refs, policy=policy, gate=gate, allow=allow, sweeps=sweeps)
    else:
        with Store(db, must_exist=True) as store:
            html = render_report(store, refs, policy=policy, gate=gate, allow=allow, sweeps=sweeps)
    path = Path(out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(html, encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot write the report to {path}: {e.strerror or e}") from None
    return path


def _many(
    store: Store, groups: list, policy: str | Path | None, allow: frozenset[str], sweeps: list[str] | None
) -> ReportRuns:
    """A baseline and several candidates: each candidate's runs, and its gate with `policy`."""
    from harness.gate.sides import runs_for
    from reports.sides import ReportRuns, labels_for

    sides = [runs_for(store, groups[0].refs, "baseline")]
    sides += [runs_for(store, g.refs, "candidate") for g in groups[1:]]
    gates = None
    if policy is not None:
        from harness.gate import load_policy
        from harness.gate.leaderboard import run_leaderboard

        pol, doc = load_policy(policy)
        gates = [g for _, g in run_leaderboard(store, pol, doc, groups[0].refs, groups[1:], None)]
    return ReportRuns(
        sides,
        labels_for(sides),
        gates=list(gates) if gates else None,
        allow=allow,
        sweeps=tuple(sweeps or ()),
    )


def _apply_policy(store: Store, policy: str | Path, base: dict, cand: dict | None) -> GateResult:
    from harness.gate import load_policy, run_gate

    if cand is None:
        raise UserError("a gate policy needs a base and a candidate; give runs or models of two")
    pol, doc = load_policy(policy)
    return run_gate(store, pol, doc, [r.run_id for r in base.values()], [r.run_id for r in cand.values()])
