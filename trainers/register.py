"""A trained adapter becomes a candidate: a model row whose base_model_id points at its base.

The adapter folder carries `tunegate.json` (ignored by fingerprints) with the training run and
its log history, so a cached adapter can be registered in a fresh store with its lineage.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from harness.models import ResolvedModel, resolve_model
from harness.store import Store
from harness.store.queries_training import logged_training_seqs, training_run_status
from harness.store.training import finish_training_run, log_training_step, start_training_run

META_FILE = "tunegate.json"


@dataclass(frozen=True)
class Candidate:
    spec: str
    """Model spec to evaluate it: the base spec plus ?adapter=DIR."""
    model_id: str
    base_model_id: str
    """The base weights the adapter applies to (models.base_model_id)."""
    parent_model_id: str
    """What was trained: the base, or the SFT candidate a DPO run continued."""
    adapter_path: Path
    training_run_id: str
    summary: dict[str, Any]
    reused: bool = False
    """True when a cached adapter was registered instead of training again."""


def candidate_spec(parent: ResolvedModel, adapter: Path) -> str:
    """The parent's spec with its adapter replaced by `adapter` (load options kept)."""
    return _with_adapter(parent.spec.raw, adapter)


def _with_adapter(raw: str, adapter: Path | None) -> str:
    base, _, query = raw.partition("?")
    params = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "adapter"]
    if adapter is not None:
        params.append(("adapter", str(adapter)))
    return base + ("?" + "&".join(f"{k}={v}" for k, v in params) if params else "")


def register_models(store: Store, *models: ResolvedModel) -> None:
    """Each model, and for adapters their base weights first: base_model_id is the lineage link."""
    for r in models:
        if r.adapter is not None:
            base_id, base_fp = r.base_model_id, r.base_fingerprint
            assert base_id is not None and base_fp is not None, "an adapter's base weights are fingerprinted"
            store.upsert_model(
                base_id,
                _with_adapter(r.spec.raw, None),  # same load options: the fingerprint includes them
                r.spec.kind,
                base_fp,
                load_options=r.options,
            )
        store.upsert_model(
            r.model_id,
            r.spec.raw,
            r.spec.kind,
            r.fingerprint,
            base_model_id=r.base_model_id,
            adapter_path=str(r.adapter) if r.adapter else None,
            load_options=r.options,
        )


def write_meta(adapter: Path, meta: dict[str, Any]) -> None:
    (adapter / META_FILE).write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")


def read_meta(adapter: Path) -> dict[str, Any] | None:
    try:
        return json.loads((adapter / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def register_cached(store: Store, adapter: Path, meta: dict[str, Any]) -> Candidate:
    """Register an adapter trained earlier (maybe into another store) with its run and logs.

    A training run row left `running` or `failed` (the process died after the adapter was
    published, before it was registered) is completed here: its missing logs, summary, candidate.
    """
    parent = resolve_model(meta["parent_spec"])
    spec = candidate_spec(parent, adapter)
    cand = resolve_model(spec)
    run_id = meta["training_run_id"]
    with store.transaction():
        register_models(store, parent, cand)
        known = training_run_status(store, run_id)
        if known and known != "completed":
            logged = logged_training_seqs(store, run_id)
            for seq, (step, logs) in enumerate(meta.get("log_history", [])):
                if seq not in logged:
                    log_training_step(store, run_id, seq, logs, step)
            finish_training_run(
                store,
                run_id,
                "completed",
                summary=meta.get("summary"),
                candidate_model_id=cand.model_id,
                adapter_path=str(adapter),
            )
        if not known:
            start_training_run(
                store,
                run_id,
                kind=meta["kind"],
                name=meta.get("name"),
                parent_model_id=parent.model_id,
                config=meta["config"],
                dataset_hash=meta["dataset_hash"],
                dataset=meta.get("dataset", {}),
                seed=meta["config"]["training"]["seed"],
                versions=meta.get("versions", {}),
                git_sha=meta.get("git_sha"),
                host=meta.get("host", platform.node()),
            )
            for seq, (step, logs) in enumerate(meta.get("log_history", [])):
                log_training_step(store, run_id, seq, logs, step)
            finish_training_run(
                store,
                run_id,
                "completed",
                summary=meta.get("summary"),
                candidate_model_id=cand.model_id,
                adapter_path=str(adapter),
            )
    return Candidate(
        spec,
        cand.model_id,
        cand.base_model_id or parent.model_id,
        parent.model_id,
        adapter,
        run_id,
        meta.get("summary", {}),
        reused=True,
    )
