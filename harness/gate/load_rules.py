"""Load rules of a gate policy (issue #26): each side's stored load run at the rule's level,
its latency percentiles, throughput and error rate against the limits; two deployments compared
by the bootstrap CI of the p95 difference and the throughput ratio."""

from __future__ import annotations

import math
from typing import Any

from harness.config import LocatedYaml
from harness.errors import UserError
from harness.gate.evaluate import CheckResult
from harness.gate.policy import GatePolicy, Rule
from harness.load.stats import p95_difference
from harness.store import Store
from harness.store import load as load_store

SUITE = "load"
"""The `suite` column of load checks in every gate output."""


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
    rows = store.db.execute(
        "SELECT model_id FROM models WHERE (model_id = ? OR spec = ?)"
        " AND model_id IN (SELECT model_id FROM load_runs)"
        " AND model_id NOT IN (SELECT model_id FROM runs WHERE status = 'completed')",
        [ref, ref],
    ).fetchall()
    return rows[0][0] if len(rows) == 1 else None


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
        if rule.max_p95_slowdown_rel is not None or rule.max_throughput_drop_rel is not None:
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
    assert rule.load is not None
    level = rule.load.label
    cid, c = cand
    out: list[CheckResult] = []

    def add(check: str, threshold: float, observed: float | None, ok: bool, reason: str) -> None:
        obs = math.nan if observed is None else float(observed)
        out.append(CheckResult(SUITE, level, check, threshold, obs, ok, f"{reason} ({cid})", None))

    n_ok = (c["n_requests"] or 0) - (c["n_errors"] or 0)
    for check, col, what in (
        ("max_p95_latency_s", "e2e_p95", "p95 latency"),
        ("max_p99_latency_s", "e2e_p99", "p99 latency"),
        ("max_ttft_p95_s", "ttft_p95", "p95 time to first token"),
    ):
        limit = getattr(rule, check)
        if limit is None:
            continue
        got = c[col]
        if got is None:  # no successful request: nothing was fast enough (fails closed)
            add(check, limit, None, False, f"no successful request to time ({c['n_requests']} sent)")
            continue
        ok = got <= limit
        sign = "<=" if ok else ">"
        add(check, limit, got, ok, f"{what} {got:.4g} s {sign} {limit:g} s over {n_ok} requests")
    if rule.max_error_rate is not None:
        rate = c["error_rate"] or 0.0
        ok = rate <= rule.max_error_rate
        add("max_error_rate", rule.max_error_rate, rate, ok,
            f"{c['n_errors']}/{c['n_requests']} requests failed under load ({rate:.2%}, allowed "
            f"{rule.max_error_rate:.2%})")  # fmt: skip
    for check, col, what, unit in (
        ("min_throughput_rps", "requests_per_s", "throughput", "requests/s"),
        ("min_output_tokens_per_s", "output_tokens_per_s", "output", "tokens/s"),
    ):
        floor = getattr(rule, check)
        if floor is None:
            continue
        got = c[col] or 0.0
        ok = got >= floor
        add(check, floor, got, ok, f"{what} {got:.4g} {unit} {'>=' if ok else '<'} {floor:g}")
    if base is not None:
        out += _compared(store, rule, cand, base, level)
    return out


def _compared(
    store: Store, rule: Rule, cand: tuple[str, dict[str, Any]], base: tuple[str, dict[str, Any]], level: str
) -> list[CheckResult]:
    (cid, c), (bid, b) = cand, base
    out: list[CheckResult] = []
    ids = f"({bid} → {cid})"
    if rule.max_p95_slowdown_rel is not None:
        margin = float(rule.max_p95_slowdown_rel)
        lat = [_ok_latencies(store, bid, b["level"]), _ok_latencies(store, cid, c["level"])]
        if not lat[0] or not lat[1]:
            out.append(CheckResult(SUITE, level, "max_p95_slowdown_rel", margin, math.nan, False,
                                   f"a side has no successful request to time {ids}", None))  # fmt: skip
        else:
            d = p95_difference(lat[0], lat[1])
            allowed = margin * d.baseline
            rel_hi = d.ci_high / d.baseline if d.baseline > 0 else math.inf
            ok = d.ci_high <= allowed
            reason = (
                f"p95 {d.baseline:.4g} s → {d.candidate:.4g} s (delta {d.delta:+.4g} s, {d.confidence:.0%} "
                f"bootstrap CI [{d.ci_low:+.4g}, {d.ci_high:+.4g}] over {d.n_baseline}/{d.n_candidate} "
                f"requests): upper bound {'<=' if ok else '>'} {allowed:.4g} s ({margin:.4g} of the "
                f"baseline's p95) {ids}"
            )
            if not ok:
                reason += "; a slowdown beyond the margin cannot be ruled out"
            out.append(CheckResult(SUITE, level, "max_p95_slowdown_rel", margin, rel_hi, ok, reason, None))
    if rule.max_throughput_drop_rel is not None:
        margin = float(rule.max_throughput_drop_rel)
        rb, rc = b["requests_per_s"] or 0.0, c["requests_per_s"] or 0.0
        ratio = rc / rb if rb > 0 else math.nan
        ok = rb > 0 and ratio >= 1 - margin
        reason = f"throughput {rb:.4g} → {rc:.4g} requests/s (ratio {ratio:.3f}, allowed >= {1 - margin:.3f})"
        reason += f" {ids}"
        out.append(CheckResult(SUITE, level, "max_throughput_drop_rel", margin, ratio, ok, reason, None))
    return out


def _ok_latencies(store: Store, load_run_id: str, level: int) -> list[float]:
    cols = load_store.request_columns(store, load_run_id, level)
    return [e for e, err in zip(cols["e2e_s"], cols["error"]) if err is None and e is not None]
