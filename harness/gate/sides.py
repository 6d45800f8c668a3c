"""Which stored runs a gate compares: run ids as given, or a model's latest completed runs."""

from __future__ import annotations

from harness.errors import UserError
from harness.store import RunRecord, Store


def runs_for(store: Store, refs: list[str], side: str) -> dict[str, RunRecord]:
    """Suite name → run for one side; each ref is a run id (or prefix) or a model."""
    out: dict[str, RunRecord] = {}
    for ref in refs:
        for run in _runs_for_ref(store, ref, side):
            if run.suite_name in out and out[run.suite_name].run_id != run.run_id:
                raise UserError(
                    f"{side} has two runs of suite '{run.suite_name}' "
                    f"({out[run.suite_name].run_id}, {run.run_id}); give one"
                )
            out[run.suite_name] = run
    return out


def _runs_for_ref(store: Store, ref: str, side: str) -> list[RunRecord]:
    if ref.startswith("r-") or store.db.execute("SELECT 1 FROM runs WHERE run_id = ?", [ref]).fetchone():
        run = store.get_run(ref)
        if run.status != "completed":
            raise UserError(f"{side} run {run.run_id} is {run.status}, not completed (resume it first)")
        return [run]
    model_id = _model_id(store, ref, side)
    rows = store.db.execute(
        "SELECT run_id FROM (SELECT r.run_id, s.name, row_number() OVER"
        " (PARTITION BY s.name ORDER BY r.started_at DESC) AS k FROM runs r JOIN suites s USING (suite_id)"
        " WHERE r.model_id = ? AND r.status = 'completed') WHERE k = 1 ORDER BY name",
        [model_id],
    ).fetchall()
    if not rows:
        raise UserError(f"{side} model '{ref}' has no completed runs in {store.path}")
    return [store.get_run(r[0]) for r in rows]


def _model_id(store: Store, ref: str, side: str) -> str:
    """A model by id, by the spec it was stored under, or by resolving the spec's fingerprint."""
    row = store.db.execute(
        "SELECT model_id FROM models WHERE model_id = ? OR spec = ? ORDER BY created_at LIMIT 1", [ref, ref]
    ).fetchone()
    if row:
        return row[0]
    from harness.models import resolve_model

    try:
        model_id = resolve_model(ref).model_id
    except UserError as e:
        raise UserError(f"{side} '{ref}' is neither a run id nor a stored model ({e})") from None
    if not store.db.execute("SELECT 1 FROM models WHERE model_id = ?", [model_id]).fetchone():
        raise UserError(f"{side} model '{ref}' ({model_id}) has no runs in {store.path}")
    return model_id
