"""Apply a gate policy to stored runs. Reads rows only: the same store gives the same verdict.

Two passes: the first matches rules to (suite, metric) comparisons, so the size of the family
of tested hypotheses is known (each registered check declares its part: a p-value tested against
a level, or a CI bound against a margin); the second applies each check with its adjusted p-value
and, for the CI-bound checks (non_inferior / superior), a CI at the family-wise level.
Suite-level checks (contamination, judge health) follow the same table. The checks themselves
are registered objects (harness.gate.checks; built-ins in checks_metric, checks_suite,
checks_load; each declares its family part on its decorator).
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field

from harness.config import LocatedYaml
from harness.errors import UserError
from harness.gate import multiplicity
from harness.gate.checks import MetricContext, SuiteContext
from harness.gate.checks import checks as gate_checks
from harness.gate.degenerate import degenerate
from harness.gate.judge_checks import default_judge_health
from harness.gate.load_rules import is_load_rule, load_checks, quality_refs  # load runs (issue #26)
from harness.gate.policy import GatePolicy, Rule
from harness.gate.result import UNDERPOWERED, CheckResult
from harness.gate.sides import runs_for
from harness.results import MetricComparison, compare_runs
from harness.store import RunRecord, Store
from harness.store.contamination import contaminated_ids, has_scan

__all__ = ["DELTA_CHECKS", "UNDERPOWERED", "CheckResult", "GateResult", "power_warnings", "run_gate"]


@dataclass(frozen=True)
class GateResult:
    policy: str
    baseline: dict[str, RunRecord]
    candidate: dict[str, RunRecord]
    checks: list[CheckResult]
    correction: str = "none"
    family: int = 0
    """How many hypotheses the correction covered."""
    warnings: list[str] = field(default_factory=list)
    allowed: frozenset[str] = frozenset()
    """Measurement mismatch fields allowed (CLI and policy): the report pairs the runs the same way."""
    comparability: dict[str, list[str]] = field(default_factory=dict)
    """Per suite: what differs between the two runs, mismatches allowed on purpose, what could
    not be checked (harness.measurement.comparability_lines); shown in every output."""

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


@dataclass
class _Planned:
    index: int
    rule: Rule
    suite: str
    comparison: MetricComparison


def run_gate(
    store: Store,
    policy: GatePolicy,
    doc: LocatedYaml,
    baseline: list[str],
    candidate: list[str],
    suites: list[str] | None = None,
    allow: set[str] | frozenset[str] = frozenset(),
) -> GateResult:
    """Compare candidate against baseline suite by suite and apply every rule. A pair of runs
    measured differently is refused unless its fields are in `allow` or the policy's
    `allow_mismatch`."""
    allow = frozenset(allow) | frozenset(policy.allow_mismatch)
    base: dict[str, RunRecord] = {}
    cand: dict[str, RunRecord] = {}
    if any(not is_load_rule(r) for r in policy.rules):
        base = runs_for(store, quality_refs(baseline), "baseline")
        cand = runs_for(store, quality_refs(candidate), "candidate")
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
    comps = {
        name: compare_runs(store, base[name].run_id, cand[name].run_id, allow=allow)[2]
        for name in sorted(base)
    }

    def recompute(i: int, s: str, rule: Rule, metrics: set[str], confidence: float) -> list[MetricComparison]:
        exclude = None
        if rule.subset == "clean":
            if not has_scan(store, base[s].suite_id):
                raise doc.error(
                    f"subset: clean needs a contamination scan of suite '{s}' in this store "
                    "(run `tunegate data contamination TRAIN_FILE --suite " + s + "`)",
                    ("rules", i, "subset"),
                )
            exclude = contaminated_ids(store, base[s].suite_id)
        try:
            ra, rb = base[s].run_id, cand[s].run_id
            return compare_runs(
                store, ra, rb, test=rule.test, ci=rule.ci, metrics=metrics, confidence=confidence,
                exclude=exclude, allow=allow,
            )[2]  # fmt: skip
        except UserError as e:
            raise doc.error(f"suite '{s}': {e.detail}", ("rules", i, "test")) from None

    planned: list[_Planned] = []
    suite_level: list[tuple[int, Rule, str]] = []
    for i, rule in enumerate(policy.rules):
        if is_load_rule(rule):
            continue
        matched_suites = [s for s in comps if fnmatch.fnmatchcase(s, rule.suite)]
        if not matched_suites:
            raise doc.error(
                f"no compared suite matches '{rule.suite}' (suites: {', '.join(comps)})",
                ("rules", i, "suite"),
            )
        suite_level += [(i, rule, s) for s in matched_suites if rule.suite_checks()]
        if not rule.metric_checks():
            continue
        matched = 0
        for s in matched_suites:
            hits = [c for c in comps[s] if fnmatch.fnmatchcase(c.metric, rule.metric)]
            if hits and ((rule.test, rule.ci) != ("auto", "auto") or rule.subset == "clean"):
                # a named test or a subset for this rule: recompute just the metrics it matches
                hits = recompute(i, s, rule, {c.metric for c in hits}, 0.95)
            matched += len(hits)
            planned += [_Planned(i, rule, s, c) for c in hits]
        if not matched:
            known = sorted({c.metric for s in matched_suites for c in comps[s]})
            raise doc.error(
                f"no metric matches '{rule.metric}' in suite(s) {', '.join(matched_suites)} "
                f"(metrics: {', '.join(known)})",
                ("rules", i, "metric"),
            )
    tested, bounds = _family_parts(planned)
    bounded = [k for k, n in enumerate(bounds) if n]
    family = len(tested) + sum(bounds)
    raw = [planned[k].comparison.paired.p_value for k in tested]
    adjusted = dict(zip(tested, multiplicity.adjust(raw, policy.correction, family)))
    wide: dict[int, MetricComparison] = {}
    for k in bounded:
        pl = planned[k]
        conf = multiplicity.ci_confidence(pl.rule.alpha, policy.correction, family)
        if abs(conf - 0.95) > 1e-12:
            wide[k] = recompute(pl.index, pl.suite, pl.rule, {pl.comparison.metric}, conf)[0]
    checks: list[CheckResult] = []
    for k, pl in enumerate(planned):
        checks += _metric_checks(pl, policy, adjusted.get(k), wide.get(k, pl.comparison), family)
    for _, rule, s in suite_level:
        checks += _suite_checks(store, rule, s, base[s], cand[s])
    if policy.judge_health != "off":
        explicit = {
            s for _, rule, s in suite_level if any(c.name == "judge_health" for c in rule.checks("suite"))
        }
        for s in sorted(set(base) - explicit):
            checks += default_judge_health(store, s, base[s], cand[s], policy.judge_health)
    checks += load_checks(store, policy, doc, baseline, candidate)
    warnings = [
        f"{c.suite} {c.metric} {c.check}: {c.warning}"
        for c in checks
        if c.warning and not c.warning.startswith(UNDERPOWERED)
    ]
    warnings += power_warnings(checks, policy)
    for s in sorted(base):  # said beside the verdict even when no rule asks
        deg = degenerate(store, base[s].run_id, cand[s].run_id)
        warnings += [f"{s}: {note}" for note in (deg.notes() if deg else [])]
    from harness.measurement import comparability_lines, comparability_record

    shown = {name: comparability_lines(comparability_record(c)) for name, c in comps.items()}
    return GateResult(
        policy.name,
        base,
        cand,
        checks,
        policy.correction,
        family,
        warnings,
        allow,
        {k: v for k, v in shown.items() if v},
    )


DELTA_CHECKS = frozenset({"min_delta", "max_drop", "non_inferior", "superior"})
"""Checks decided on the paired delta: the only rows whose p-value is about what they check."""


def power_warnings(checks: list[CheckResult], policy: GatePolicy) -> list[str]:
    """One line per suite for the checks whose margin is below what the suite can detect."""
    by_suite: dict[str, dict[str, CheckResult]] = {}
    for c in checks:
        if c.warning and c.warning.startswith(UNDERPOWERED) and c.comparison is not None:
            by_suite.setdefault(c.suite, {}).setdefault(c.metric, c)
    out = []
    for suite, worst in by_suite.items():
        n = next(iter(worst.values())).comparison.paired.n  # type: ignore[union-attr]
        parts = [f"{m} {c.mde:.3g} (margin {c.threshold if c.check != 'non_inferior' else -c.threshold:.3g})"
                 for m, c in worst.items()]  # fmt: skip
        out.append(
            f"{suite}: underpowered at n={n} ({policy.power:.0%} power): the smallest detectable "
            f"effects are above the margins for {len(parts)} metric(s): " + ", ".join(parts)
        )
    return out


def _family_parts(planned: list[_Planned]) -> tuple[list[int], list[int]]:
    """The multiplicity family, from what the registered checks declare (harness.gate.checks):
    the comparisons whose paired p-value a check tests against a level (each counts once, however
    many checks read that one p-value), and per comparison the number of CI bounds checks decide
    against a margin."""
    declared = [c for c in gate_checks("metric") if c.family is not None]
    tested = [
        k
        for k, pl in enumerate(planned)
        if any(c.family == "p_value" and c.family_members(pl.rule) for c in declared)
    ]
    bounds = [sum(c.family_members(pl.rule) for c in declared if c.family == "ci_bound") for pl in planned]
    return tested, bounds


def _metric_checks(
    pl: _Planned, policy: GatePolicy, p_adj: float | None, bounded: MetricComparison, family: int
) -> list[CheckResult]:
    """Every metric check the rule sets, in registration order (harness.gate.checks)."""
    c = pl.comparison
    if c.paired.n == 0 or math.isnan(c.paired.candidate):
        return [CheckResult(pl.suite, c.metric, "paired", 0, 0, False, "no examples scored on both sides", c)]
    ctx = MetricContext(pl.rule, pl.suite, c, policy, p_adj, bounded, family)
    return [row for check in pl.rule.checks("metric") for row in check.evaluate(ctx)]


def _suite_checks(store: Store, rule: Rule, suite: str, rb: RunRecord, rc: RunRecord) -> list[CheckResult]:
    """Every suite check the rule sets, in registration order."""
    ctx = SuiteContext(store, rule, suite, rb, rc)
    return [row for check in rule.checks("suite") for row in check.evaluate(ctx)]
