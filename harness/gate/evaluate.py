"""Apply a gate policy to stored runs. Reads rows only: the same store gives the same verdict.

Two passes: the first matches rules to (suite, metric) comparisons, so the size of the family
of tested hypotheses is known; the second applies each check with its adjusted p-value and,
for non_inferior / superior, a CI at the family-wise level. Suite-level checks (contamination,
judge health) follow the same table.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.config import LocatedYaml
from harness.errors import UserError
from harness.gate import multiplicity, power
from harness.gate.degenerate import degenerate
from harness.gate.policy import GatePolicy, Rule
from harness.gate.sides import runs_for
from harness.results import MetricComparison, compare_runs
from harness.store import RunRecord, Store
from harness.store.contamination import contaminated_ids, has_scan
from harness.store.judge_health import DEFAULTS, get_health, problems


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
    comparison: MetricComparison | None
    """None for suite-level checks (contamination, judge health)."""
    p_value: float | None = None
    """Raw p-value of a significance-tested check."""
    p_adjusted: float | None = None
    """The same after the policy's correction (equal to p_value with correction: none)."""
    mde: float | None = None
    """Minimum detectable effect at this suite's n and spread (80% power, the rule's alpha)."""
    n_needed: int | None = None
    """Examples the rule's margin would need for that power."""
    warning: str | None = None
    """A caveat that did not fail the check (e.g. underpowered)."""
    subset: str = "all"


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
    # load rules (issue #26) read load runs, the others runs: harness.gate.load_rules
    from harness.gate.load_rules import is_load_rule, load_checks, quality_refs

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
    # the family: every p-value tested against a level, every CI bound against a margin
    tested = [
        k
        for k, pl in enumerate(planned)
        if pl.rule.significance is not None and pl.rule.margin_set("max_drop")
    ]
    bounded = [
        k for k, pl in enumerate(planned)
        if pl.rule.margin_set("non_inferior") or pl.rule.margin_set("superior")
    ]  # fmt: skip
    family = len(tested) + sum(
        pl.rule.margin_set("non_inferior") + pl.rule.margin_set("superior") for pl in planned
    )
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
        checks += _apply(pl, policy, adjusted.get(k), wide.get(k, pl.comparison), family)
    for _, rule, s in suite_level:
        checks += _suite_checks(store, rule, s, base[s], cand[s])
    if policy.judge_health != "off":
        explicit = {
            s for _, rule, s in suite_level if any(c.startswith("judge_") for c in rule.suite_checks())
        }
        for s in sorted(set(base) - explicit):
            checks += _default_judge_health(store, s, base[s], cand[s], policy.judge_health)
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


UNDERPOWERED = "underpowered"
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


def _apply(
    pl: _Planned, policy: GatePolicy, p_adj: float | None, bounded: MetricComparison, family: int
) -> list[CheckResult]:
    rule, suite, c = pl.rule, pl.suite, pl.comparison
    p = c.paired
    gain = p.delta if p.higher_is_better else -p.delta  # > 0: better in the metric's direction
    out = []
    label = "" if rule.subset == "all" else " [clean subset]"
    fail_weak = policy.fail_underpowered if rule.fail_underpowered is None else rule.fail_underpowered

    def add(check: str, threshold: float, observed: float, ok: bool, reason: str, *,
            margin: float | None = None, comp: MetricComparison = c, p_raw: float | None = None,
            p_adjusted: float | None = None) -> None:  # fmt: skip
        pw = mde = need = warning = None
        if margin is not None:
            pw = power.for_paired(comp.paired, margin, rule.alpha, policy.power)
        if pw is not None:
            mde, need = pw.mde, pw.n_needed
            if margin and margin > 0 and pw.mde > margin:
                weak = (
                    f"{UNDERPOWERED}: at n={pw.n} the smallest effect detectable with "
                    f"{policy.power:.0%} power (alpha {rule.alpha:g}) is {pw.mde:.4g}, above the margin "
                    f"{margin:.4g}"
                    + (f"; ~{need} examples would be needed" if need and need <= 100 * pw.n else "")
                )
                if fail_weak:
                    ok, reason = False, f"{reason}; {weak}"
                else:
                    warning = weak
        out.append(CheckResult(suite, comp.metric, check, threshold, observed, ok, reason + label, comp,
                               p_raw, p_adjusted, mde, need, warning, rule.subset))  # fmt: skip

    if p.n == 0 or math.isnan(p.candidate):
        out.append(CheckResult(suite, c.metric, "paired", 0, 0, False, "no examples scored on both sides", c))
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
            "min_delta", rule.min_delta, gain, ok,
            f"improved by {gain:+.4g} (needs >= {rule.min_delta:g}); 95% {p.ci_method} CI of delta "
            f"[{p.ci_low:.4g}, {p.ci_high:.4g}]",
            margin=rule.min_delta,
        )  # fmt: skip
    if rule.margin_set("max_drop"):
        drop = -gain
        sig = rule.significance
        limit, how = rule.margin("max_drop", p.baseline)
        p_show = _p_text(p, p_adj, policy.correction) if sig is not None else ""
        what = f"delta {p.delta:+.4g} ({_drop_word(drop)})"
        if drop <= limit:
            add("max_drop", limit, drop, True, f"{what} within {limit:.4g}{how}{p_show}",
                margin=limit, p_raw=p.p_value if sig else None, p_adjusted=p_adj)  # fmt: skip
        elif sig is not None and not (p_adj is not None and p_adj < sig):
            add(
                "max_drop", limit, drop, True,
                f"{what} beyond {limit:.4g}{how} but not significant{p_show} >= {sig:g}",
                margin=limit, p_raw=p.p_value, p_adjusted=p_adj,
            )  # fmt: skip
        else:
            add(
                "max_drop", limit, drop, False,
                f"{what} exceeds {limit:.4g}{how}{p_show}; "
                f"{p.losses} examples worse, {p.wins} better",
                margin=limit, p_raw=p.p_value if sig else None, p_adjusted=p_adj,
            )  # fmt: skip
    for check in ("non_inferior", "superior"):
        if not rule.margin_set(check):
            continue
        margin, how = rule.margin(check, p.baseline)
        b = bounded.paired
        lower = b.ci_low if b.higher_is_better else -b.ci_high  # the delta's bound on the bad side
        bar = -margin if check == "non_inferior" else margin
        ok = lower > bar
        conf = b.detail.get("confidence", 0.95)
        widened = f", widened for {family} tests ({policy.correction})" if abs(conf - 0.95) > 1e-12 else ""
        upper = b.ci_high if b.higher_is_better else -b.ci_low
        reason = (
            f"{conf:.4g} {b.ci_method} CI of the gain [{lower:.4g}, {upper:.4g}]{widened}: "
            f"lower bound {'>' if ok else '<='} {bar:+.4g}{how}"
        )
        if not ok:
            what = "a loss" if check == "non_inferior" else "no gain"
            reason += f" ({what} beyond the margin cannot be ruled out)"
        add(check, bar, lower, ok, reason, margin=margin, comp=bounded)
    if rule.max_error_rate is not None:
        errors, total = c.n_errors[1], p.n + c.only_in[1] + c.n_errors[1]
        rate = errors / total if total else 0.0
        ok = rate <= rule.max_error_rate
        add(
            "max_error_rate", rule.max_error_rate, rate, ok,
            f"{errors}/{total} candidate examples errored ({rate:.1%}, allowed {rule.max_error_rate:.1%})",
        )  # fmt: skip
    return out


def _drop_word(drop: float) -> str:
    """The delta in the metric's better direction, in words (a perplexity rise is a drop)."""
    if drop > 0:
        return f"a drop of {drop:.4g}"
    return "no drop" if drop == 0 else f"a gain of {-drop:.4g}"


def _p_text(p: Any, p_adj: float | None, correction: str) -> str:
    if p_adj is None or correction == "none":
        return f" ({p.test} p={p.p_value:.3g})"
    return f" ({p.test} p={p.p_value:.3g}, {correction}-adjusted {p_adj:.3g})"


def _suite_checks(store: Store, rule: Rule, suite: str, rb: RunRecord, rc: RunRecord) -> list[CheckResult]:
    out = []

    def add(check: str, threshold: float, observed: float, ok: bool, reason: str) -> None:
        out.append(CheckResult(suite, "(suite)", check, threshold, observed, ok, reason, None))

    if rule.max_contaminated is not None or rule.max_contaminated_rate is not None:
        if not has_scan(store, rb.suite_id):
            for check in ("max_contaminated", "max_contaminated_rate"):
                if getattr(rule, check) is not None:
                    add(check, getattr(rule, check), math.nan, False,
                        f"no contamination scan of '{suite}' in this store: run `tunegate data "
                        f"contamination TRAIN_FILE --suite {suite}` (fails closed)")  # fmt: skip
        else:
            bad = len(contaminated_ids(store, rb.suite_id))
            n = rb.n_examples or 0
            if rule.max_contaminated is not None:
                ok = bad <= rule.max_contaminated
                why = f"{bad} of {n} examples found in training data (allowed {rule.max_contaminated})"
                add("max_contaminated", rule.max_contaminated, bad, ok, why)
            if rule.max_contaminated_rate is not None:
                rate = bad / n if n else 0.0
                ok = rate <= rule.max_contaminated_rate
                add("max_contaminated_rate", rule.max_contaminated_rate, rate, ok,
                    f"{bad}/{n} examples ({rate:.1%}) found in training data "
                    f"(allowed {rule.max_contaminated_rate:.1%})")  # fmt: skip
    limits = {
        "max_parse_failures": rule.judge_max_parse_failures,
        "min_consistency": rule.judge_min_consistency,
        "min_kappa": rule.judge_min_kappa,
        "min_separation": rule.judge_min_separation,
    }
    if any(v is not None for v in limits.values()):
        out += _judge_checks(store, suite, rb, rc, limits, "fail", "judge_health")
    if rule.template_match is not None:
        from harness.gate.template_rule import template_check

        out.append(template_check(suite, rc))
    if rule.max_identical_to_baseline is not None or rule.max_prompt_echo is not None:
        deg = degenerate(store, rb.run_id, rc.run_id)  # None: no generated text to look at
        for check, what, words in (
            ("max_identical_to_baseline", "identical", "candidate outputs identical to the baseline's"),
            ("max_prompt_echo", "echo_candidate", "candidate outputs repeat the prompt"),
        ):
            limit = getattr(rule, check)
            if limit is None or deg is None:
                continue
            share = deg.share(what)
            add(check, limit, share, share <= limit,
                f"{getattr(deg, what)} of {deg.n} {words} ({share:.0%}, allowed {limit:.0%})")  # fmt: skip
    return out


def _judge_checks(
    store: Store,
    suite: str,
    rb: RunRecord,
    rc: RunRecord,
    limits: Mapping[str, float | None],
    mode: str,
    check: str,
) -> list[CheckResult]:
    found = [
        (side, run, get_health(store, run.run_id)) for side, run in (("baseline", rb), ("candidate", rc))
    ]
    if all(h is None for _, _, h in found):
        if rb.suite_kind != "judge" or mode != "fail" or check != "judge_health":
            return []
        why = "judge suite without stored judge health (re-run it with this tunegate)"
        return [CheckResult(suite, "(judge)", check, 0, math.nan, False, why, None)]
    issues = [f"{side} judge: {p}" for side, _, h in found if h is not None for p in problems(h, limits)]
    rates = [h["parse_failure_rate"] or 0 for _, _, h in found if h is not None]
    ok = not issues
    reason = "; ".join(issues) if issues else _healthy(found)
    threshold = limits.get("max_parse_failures") or 0
    if ok or mode == "fail":
        return [CheckResult(suite, "(judge)", check, threshold, max(rates), ok, reason, None)]
    shown = f"warning only (judge_health: warn): {reason}"
    return [CheckResult(suite, "(judge)", check, threshold, max(rates), True, shown, None, warning=reason)]


def _healthy(found: list[tuple[str, RunRecord, dict[str, Any] | None]]) -> str:
    parts = []
    for side, _, h in found:
        if h is None:
            continue
        bits = [f"parse failures {h['parse_failure_rate']:.0%}"]
        if h["consistency"] is not None:
            bits.append(f"consistency {h['consistency']:.2f}")
        if h["judge"] != "pairwise" and h["score_sd"] is not None:
            bits.append(f"score sd {h['score_sd']:.3g}")
        if h["kappa"] is not None:
            bits.append(f"kappa {h['kappa']:.2f}")
        sep = (h.get("sanity") or {}).get("separation")
        if sep is not None:
            bits.append(f"sanity separation {sep:+.2f}")
        parts.append(f"{side} judge healthy: " + ", ".join(bits))
    return "; ".join(parts)


def _default_judge_health(
    store: Store, suite: str, rb: RunRecord, rc: RunRecord, mode: str
) -> list[CheckResult]:
    """The fail-closed default: every judge suite's judge must be parseable, consistent, not constant."""
    limits = {k: v for k, v in DEFAULTS.items()}
    return _judge_checks(store, suite, rb, rc, limits, mode, "judge_health")
