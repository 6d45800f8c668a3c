"""Which stored runs a gate compares: run ids as given, or a model's latest completed runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.store import RunRecord, Store, queries_gate


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


def run_pair(store: Store, baseline: str, candidate: str, suite: str | None = None) -> tuple[str, str]:
    """The two run ids `compare` pairs: each side a run id or a model (as for the gate), on the one
    suite both have (or `suite`). Two run ids are returned as given (compare checks them)."""
    is_run = [_is_run(store, ref) for ref in (baseline, candidate)]
    if all(is_run):
        return baseline, candidate
    if any(is_run) and suite is None:  # a run and a model: the model's run of that suite
        suite = store.get_run(baseline if is_run[0] else candidate).suite_name
    base, cand = runs_for(store, [baseline], "baseline"), runs_for(store, [candidate], "candidate")
    common = sorted(set(base) & set(cand))
    if suite is not None:
        if suite not in common:
            both = ", ".join(common) or "none"
            raise UserError(f"suite '{suite}' has no completed run on both sides (both have: {both})")
        common = [suite]
    if not common:
        raise UserError(
            f"baseline '{baseline}' ({', '.join(sorted(base))}) and candidate '{candidate}' "
            f"({', '.join(sorted(cand))}) have no suite in common"
        )
    if len(common) > 1:
        raise UserError(
            f"both sides have runs of {len(common)} suites ({', '.join(common)}): pick one with --suite"
        )
    return base[common[0]].run_id, cand[common[0]].run_id


def _is_run(store: Store, ref: str) -> bool:
    return ref.startswith("r-") or queries_gate.run_exists(store, ref)


def _runs_for_ref(store: Store, ref: str, side: str) -> list[RunRecord]:
    if _is_run(store, ref):
        run = store.get_run(ref)
        if run.status != "completed":
            raise UserError(f"{side} run {run.run_id} is {run.status}, not completed (resume it first)")
        return [run]
    model_id = _model_id(store, ref, side)
    run_ids = queries_gate.latest_completed_runs(store, model_id)
    if not run_ids:
        raise UserError(f"{side} model '{ref}' has no completed runs in {store.path}")
    return [store.get_run(r) for r in run_ids]


def _model_id(store: Store, ref: str, side: str) -> str:
    """A model by id, or the model a spec names *now*: the stored model whose fingerprint the
    spec's current files (a predictions file's hash, a folder's weights) give.

    Several stored models under one spec (a predictions file re-scored after an edit, a folder
    retrained in a CI store kept between runs) are told apart by re-fingerprinting the spec with
    each one's stored load options; when that is impossible (the files are gone, an endpoint) and
    more than one matches, or the files match none of them, it is refused with the candidates."""
    if queries_gate.model_exists(store, ref):
        return ref
    stored = queries_gate.models_of_spec(store, ref)
    if stored:
        return _pick(store, ref, side, stored)
    from harness.models import resolve_model

    try:
        model_id = resolve_model(ref).model_id
    except UserError as e:
        raise UserError(f"{side} '{ref}' is neither a run id nor a stored model ({e})") from None
    if not queries_gate.model_exists(store, model_id):
        raise UserError(f"{side} model '{ref}' ({model_id}) has no runs in {store.path}")
    return model_id


def _pick(store: Store, ref: str, side: str, stored: list[tuple]) -> str:
    """The one stored model of spec `ref` whose fingerprint the spec's files give now."""
    now = [(row, _fingerprint_now(ref, row[1], row[3])) for row in stored]
    known = [(row, fp) for row, fp in now if fp is not None]
    current = [row for row, fp in known if fp == row[2]]
    if len(current) == 1:
        return current[0][0]
    if not known and len(stored) == 1:  # nothing to re-check (an endpoint, files gone): unambiguous
        return stored[0][0]
    if current:
        why = f"'{ref}' names {len(current)} stored models (the same files loaded with other options)"
        stored = current
    elif known:
        why = (
            f"what '{ref}' names now (its files changed since) matches none of its {len(stored)} stored "
            "models: evaluate it again, or pick a stored one"
        )
    else:
        why = f"'{ref}' names {len(stored)} stored models and its files cannot be checked here"
    raise UserError(f"{side} {why}; give a model id or run id:\n" + _candidates(store, stored))


def _candidates(store: Store, rows: list[tuple]) -> str:
    lines = []
    for model_id, _, fp, _, created in rows:
        runs = queries_gate.completed_run_ids(store, model_id)
        shown = ", ".join(runs[:3]) + (f" (+{len(runs) - 3} more)" if len(runs) > 3 else "")
        lines.append(
            f"  {model_id}  fingerprint {fp[:12]}  stored {str(created)[:19]}  runs: {shown or 'none'}"
        )
    return "\n".join(lines)


def _fingerprint_now(ref: str, kind: str, load_options: str | None) -> str | None:
    """The fingerprint `ref` gives today with a stored model's load options; None when it cannot be
    known here without loading or converting anything (an endpoint, missing files)."""
    from harness.models.fingerprint import without_remembering
    from harness.models.spec import parse_model_spec

    try:
        with without_remembering():  # gate/compare/report only read: the hash memo is left alone
            return _fingerprint_files(parse_model_spec(ref), load_options)
    except (UserError, OSError, ValueError):
        return None


def _fingerprint_files(spec: Any, load_options: str | None) -> str | None:
    import json

    from harness.models.fingerprint import fingerprint, predictions_fingerprint
    from harness.models.registry import is_local

    options = json.loads(load_options) if load_options else {}
    if spec.kind == "predictions":
        path = Path(spec.path)
        return predictions_fingerprint(path, options) if path.is_file() else None
    if is_local(spec.kind):  # weights tunegate loads (BackendEntry.local)
        weights = _weights_folder(spec)
        adapter = Path(spec.adapter) if spec.adapter else None
        if weights is None or not weights.is_dir() or (adapter is not None and not adapter.is_dir()):
            return None
        return fingerprint(weights, adapter, options)
    return None


def _weights_folder(spec: Any) -> Path | None:
    """The HF folder a local spec loads, without converting a GGUF (None if not converted here)."""
    from pathlib import Path

    from harness.models.fingerprint import file_sha256
    from harness.models.gguf import smollm2_gguf
    from harness.paths import cache_dir

    if spec.kind == "hf":
        return Path(spec.path)
    gguf = smollm2_gguf() if spec.kind == "alias" else Path(spec.path)
    if not gguf.is_file():
        return None
    folder = cache_dir() / "models" / f"{gguf.stem}-{file_sha256(gguf)[:16]}"  # as gguf.converted_folder
    return folder if (folder / "model.safetensors").is_file() else None
