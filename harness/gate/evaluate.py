"""Apply a gate policy to stored runs. Reads rows only: the same store gives the same verdict."""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass

from harness.errors import UserError
from harness.gate.policy import GatePolicy, Rule
from harness.gate.sides import runs_for
from harness.results import MetricComparison, compare_runs
from harness.store import RunRecord, Store


@dataclass(frozen=True)
class CheckResult:
    """One check of one rule on one suite × metric: a row in the table, a JUnit testcase."""

    suite: str
    metric: str
    check: str
    threshold: float
    observed: float
    passed: bool
    reason: str
    comparison: MetricComparison


@dataclass(frozen=True)
class GateResult:
    policy: str
    baseline: dict[str, RunRecord]
    candidate: dict[str, RunRecord]
    checks: list[CheckResult]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


def run_gate(
    store: Store,
    policy: GatePolicy,
    doc,
    baseline: list[str],
    candidate: list[str],
    suites: list[str] | None = None,
) -> GateResult:
    """Compare candidate against baseline suite by suite and apply every rule."""
    base, cand = runs_for(store, baseline, "baseline"), runs_for(store, candidate, "candidate")
    names = set(suites) if suites else set(base) | set(cand)
    for name in sorted(names):
        if name not in base or name not in cand:
            side = "baseline" if name not in base else "candidate"
            raise UserError(
                f"suite '{name}' has no completed run for the {side}; evaluate it "
                "or restrict the gate with --suite"
            )
    base = {k: v for k, v in base.items() if k in names}
    cand = {k: v for k, v in cand.items() if k in names}
    for i, name in enumerate(policy.required):
        if name not in base:
            raise doc.error(f"required suite '{name}' has no runs to compare", ("required", i))
    comps = {name: compare_runs(store, base[name].run_id, cand[name].run_id)[2] for name in sorted(base)}
    checks: list[CheckResult] = []
    for i, rule in enumerate(policy.rules):
        matched_suites = [s for s in comps if fnmatch.fnmatchcase(s, rule.suite)]
        if not matched_suites:
            raise doc.error(
                f"no compared suite matches '{rule.suite}' (suites: {', '.join(comps)})",
                ("rules", i, "suite"),
            )
        matched = 0
        for s in matched_suites:
            hits = [c for c in comps[s] if fnmatch.fnmatchcase(c.metric, rule.metric)]
            if hits and (rule.test, rule.ci) != ("auto", "auto"):
                # A named test for this rule: recompute just the metrics it matches.
                try:
                    hits = compare_runs(
                        store,
                        base[s].run_id,
                        cand[s].run_id,
                        test=rule.test,
                        ci=rule.ci,
                        metrics={c.metric for c in hits},
                    )[2]
                except UserError as e:
                    raise doc.error(f"suite '{s}': {e.detail}", ("rules", i, "test")) from None
            for c in hits:
                matched += 1
                checks += _apply(rule, s, c)
        if not matched:
            known = sorted({c.metric for s in matched_suites for c in comps[s]})
            raise doc.error(
                f"no metric matches '{rule.metric}' in suite(s) {', '.join(matched_suites)} "
                f"(metrics: {', '.join(known)})",
                ("rules", i, "metric"),
            )
    return GateResult(policy.name, base, cand, checks)


def _apply(rule: Rule, suite: str, c: MetricComparison) -> list[CheckResult]:
    p = c.paired
    gain = p.delta if p.higher_is_better else -p.delta  # > 0: better in the metric's direction
    out = []

    def add(check: str, threshold: float, observed: float, ok: bool, reason: str) -> None:
        out.append(CheckResult(suite, c.metric, check, threshold, observed, ok, reason, c))

    if p.n == 0 or math.isnan(p.candidate):
        add("paired", 0, 0, False, "no examples scored on both sides")
        return out
    if rule.min is not None:
        ok = p.candidate >= rule.min
        add(
            "min",
            rule.min,
            p.candidate,
            ok,
            f"candidate {p.candidate:.4g} {'>=' if ok else '<'} {rule.min:g}",
        )
    if rule.max is not None:
        ok = p.candidate <= rule.max
        add(
            "max",
            rule.max,
            p.candidate,
            ok,
            f"candidate {p.candidate:.4g} {'<=' if ok else '>'} {rule.max:g}",
        )
    if rule.min_delta is not None:
        ok = gain >= rule.min_delta
        add(
            "min_delta",
            rule.min_delta,
            gain,
            ok,
            f"improved by {gain:+.4g} (needs >= {rule.min_delta:g}); 95% {p.ci_method} CI of delta "
            f"[{p.ci_low:.4g}, {p.ci_high:.4g}]",
        )
    if rule.max_drop is not None:
        drop = -gain
        if drop <= rule.max_drop:
            add("max_drop", rule.max_drop, drop, True, f"drop {drop:+.4g} within {rule.max_drop:g}")
        elif rule.significance is not None and not p.p_value < rule.significance:
            add(
                "max_drop",
                rule.max_drop,
                drop,
                True,
                f"drop {drop:+.4g} beyond {rule.max_drop:g} but not significant "
                f"({p.test} p={p.p_value:.3g} >= {rule.significance:g})",
            )
        else:
            sig = f", {p.test} p={p.p_value:.3g}" if rule.significance is not None else ""
            add(
                "max_drop",
                rule.max_drop,
                drop,
                False,
                f"drop {drop:+.4g} exceeds {rule.max_drop:g}{sig}; "
                f"{p.losses} examples worse, {p.wins} better",
            )
    if rule.max_error_rate is not None:
        errors, total = c.n_errors[1], p.n + c.only_in[1] + c.n_errors[1]
        rate = errors / total if total else 0.0
        ok = rate <= rule.max_error_rate
        add(
            "max_error_rate",
            rule.max_error_rate,
            rate,
            ok,
            f"{errors}/{total} candidate examples errored ({rate:.1%}, allowed {rule.max_error_rate:.1%})",
        )
    return out
