"""Load rules of a gate policy (issue #26): each side's stored load run at the rule's level,
handed to the rule's load checks (harness.gate.checks_load: latency percentiles, throughput,
error rate; two deployments compared by the p95 difference and the throughput ratio)."""

from __future__ import annotations

import math
from typing import Any

from harness.config import LocatedYaml
from harness.errors import UserError
from harness.gate.checks import LOAD_SUITE as SUITE
from harness.gate.checks import LoadContext
from harness.gate.policy import GatePolicy, Rule
from harness.gate.result import CheckResult
from harness.store import Store, queries_gate
from harness.store import load as load_store

__all__ = ["SUITE", "is_load_rule", "load_checks", "load_model_of", "quality_refs"]


def is_load_rule(rule: Rule) -> bool:
    return rule.load is not None


def quality_refs(refs: list[str]) -> list[str]:
    """The refs a quality comparison reads: everything but load run ids."""
    return [r for r in refs if not load_store.is_load_ref(r)]


def load_model_of(store: Store, ref: str) -> str | None:
    """The model of a load run id, or of a stored model (id or spec) whose only runs are load
    runs; None otherwise (the quality side resolves it)."""
    if load_store.is_load_ref(ref):
        return load_store.get_load_run(store, ref).model_id
    found = queries_gate.load_only_models(store, ref)
    return found[0] if len(found) == 1 else None


def load_checks(
    store: Store, policy: GatePolicy, doc: LocatedYaml, baseline: list[str], candidate: list[str]
) -> list[CheckResult]:
    """Every check of every load rule, in policy order."""
    out: list[CheckResult] = []
    for i, rule in enumerate(policy.rules):
        if not is_load_rule(rule):
            continue
        assert rule.load is not None
        mode, value = rule.load.mode_value()
        cand = _side(store, doc, i, candidate, "candidate", mode, value)
        base = None
        if any(check.needs_baseline for check in rule.checks("load")):
            base = _side(store, doc, i, baseline, "baseline", mode, value)
        out += _checks(store, rule, cand, base)
    return out


def _side(
    store: Store, doc: LocatedYaml, i: int, refs: list[str], side: str, mode: str, value: float
) -> tuple[str, dict[str, Any]]:
    """(load run id, level row) of one side at the level: a load run id given as the side's
    ref, else the latest completed load run of the side's model with that level."""
    label = f"concurrency {value:g}" if mode == "concurrency" else f"rate {value:g}/s"
    given = [r for r in refs if load_store.is_load_ref(r)]
    ids: list[str] = []
    if given:
        ids = [load_store.get_load_run(store, r).load_run_id for r in given]
    else:
        from harness.gate.sides import _model_id

        for ref in refs:
            try:
                model_id = _model_id(store, ref, side)
            except UserError:
                continue  # a quality run id: not a load side
            found = load_store.latest_with_level(store, model_id, mode, value)
            if found:
                ids.append(found)
    for load_run_id in ids:
        run = load_store.get_load_run(store, load_run_id)
        for lv in load_store.levels(store, load_run_id):
            if lv["mode"] == mode and math.isclose(lv["value"], value) and lv["status"] == "completed":
                if run.status != "completed":
                    raise doc.error(
                        f"{side} load run {load_run_id} is {run.status}, not completed", ("rules", i)
                    )
                return load_run_id, lv
    what = ", ".join(refs) or "nothing"
    raise doc.error(
        f"the {side} ({what}) has no completed load run at {label}: run `tunegate load --model … "
        f"--{mode} {value:g}` first, or give a load run id (l-…) as --{side}",
        ("rules", i, "load"),
    )


def _checks(
    store: Store, rule: Rule, cand: tuple[str, dict[str, Any]], base: tuple[str, dict[str, Any]] | None
) -> list[CheckResult]:
    """Every load check the rule sets, in registration order (harness.gate.checks_load)."""
    assert rule.load is not None
    ctx = LoadContext(store, rule, rule.load.label, cand, base)
    return [row for check in rule.checks("load") for row in check.evaluate(ctx)]
