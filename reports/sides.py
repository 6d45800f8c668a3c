"""Which stored runs a report shows: run ids or models, resolved into a base and a candidate side."""

from __future__ import annotations

from harness.errors import UserError
from harness.gate.sides import runs_for
from harness.store import RunRecord, Store

Side = dict[str, RunRecord]
"""Suite name → run."""


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
