"""Gate checks: each policy key (or small group of keys) is one registered object.

A check declares the rule keys it reads and their pydantic types (the policy model is built
from them: harness.gate.policy), the scope it runs at, and `evaluate(ctx)` returning rows of the
verdict. Registration order is evaluation order within a scope, so the verdict table reads the
same whatever registers later. A plugin adds one with `@gate_check(...)` (harness.plugins).

Scopes: `metric` runs on every (suite, metric) comparison a rule matches (MetricContext);
`suite` once per matched suite (SuiteContext); `load` on the candidate's load run at the rule's
level (LoadContext, harness.gate.load_rules).

A metric check that decides a hypothesis declares its part in the policy's multiplicity family
(`family`): "p_value" — it tests the comparison's paired p-value against a level (it reads
`ctx.p_adjusted`); "ci_bound" — it decides on a CI bound (it reads `ctx.bounded`, widened to the
family-wise level). harness.gate.evaluate sizes the Holm / Bonferroni family from these
declarations alone, so a plugin's check joins it like a built-in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from harness.gate import power
from harness.gate.result import UNDERPOWERED, CheckResult
from harness.registry import Registry

if TYPE_CHECKING:
    from harness.gate.degenerate import Degenerate
    from harness.gate.policy import GatePolicy, Rule
    from harness.results import MetricComparison
    from harness.stats import Paired
    from harness.store import RunRecord, Store

Scope = Literal["metric", "suite", "load"]
Family = Literal["p_value", "ci_bound"]
FAMILIES: tuple[Family, ...] = ("p_value", "ci_bound")
Evaluate = Callable[[Any], Iterable[CheckResult]]


@dataclass(frozen=True)
class GateCheck:
    """One pluggable gate check."""

    name: str
    """Registry name; also the `check` column of its rows unless evaluate names another."""
    scope: Scope
    keys: dict[str, Any]
    """Policy key → pydantic type of its value (None always means: not set)."""
    evaluate: Evaluate
    alternatives: dict[str, Any] = field(default_factory=dict)
    """Other forms of the same limit (max_drop_rel for max_drop): at most one may be set."""
    needs_baseline: bool = False
    """load scope: reads the baseline's load run at the level too."""
    family: Family | None = None
    """Its part in the multiplicity family (metric scope; see the module's docstring). None: it
    decides no hypothesis (a floor, a ceiling, a point estimate)."""
    family_when: tuple[str, ...] = ()
    """Rule keys besides its own that must also be set for it to count (max_drop tests its
    p-value only with `significance`); empty: it counts whenever it is set."""

    def all_keys(self) -> dict[str, Any]:
        return {**self.keys, **self.alternatives}

    def is_set(self, rule: Rule) -> bool:
        return any(rule.value(k) is not None for k in self.all_keys())

    def family_members(self, rule: Rule) -> int:
        """Hypotheses this check adds to the family on each comparison `rule` matches: 1 or 0."""
        if self.family is None or not self.is_set(rule):
            return 0
        return int(all(rule.value(k) is not None for k in self.family_when))


GATE_CHECKS: Registry[Iterable[CheckResult]] = Registry("gate check")
"""name → the check's evaluate; the GateCheck itself is `entry.info['check']`."""


def gate_check(
    name: str,
    scope: Scope,
    keys: dict[str, Any],
    *,
    alternatives: dict[str, Any] | None = None,
    needs_baseline: bool = False,
    family: Family | None = None,
    family_when: tuple[str, ...] = (),
) -> Callable[[Evaluate], GateCheck]:
    """Decorator: register `evaluate(ctx) -> rows` as the gate check `name`."""
    _check_family(name, scope, family)

    def deco(fn: Evaluate) -> GateCheck:
        check = GateCheck(
            name, scope, dict(keys), fn, dict(alternatives or {}), needs_baseline,
            family=family, family_when=tuple(family_when),
        )  # fmt: skip
        GATE_CHECKS.register(name, check=check)(fn)
        return check

    return deco


def _check_family(name: str, scope: Scope, family: str | None) -> None:
    if family is not None and family not in FAMILIES:
        raise ValueError(f"gate check '{name}': family must be one of {FAMILIES} or None, not {family!r}")
    if family is not None and scope != "metric":
        raise ValueError(
            f"gate check '{name}': only metric checks have a p-value or CI bound ({scope} scope)"
        )


def checks(scope: Scope | None = None) -> list[GateCheck]:
    """Registered checks (built-ins and plugins), in registration order."""
    found = [e.info["check"] for e in GATE_CHECKS.entries()]
    return [c for c in found if scope is None or c.scope == scope]


def keys_of(scope: Scope) -> tuple[str, ...]:
    """The policy keys of a scope's checks, each limit first, then the alternative forms."""
    cs = checks(scope)
    out = [k for c in cs for k in c.keys] + [k for c in cs for k in c.alternatives]
    return tuple(dict.fromkeys(out))


@dataclass
class MetricContext:
    """One rule on one (suite, metric) comparison, with the family-wise numbers."""

    rule: Rule
    suite: str
    comparison: MetricComparison
    policy: GatePolicy
    p_adjusted: float | None
    """The comparison's p-value after the policy's correction; None unless a check of family
    "p_value" counts on this rule (max_drop with significance)."""
    bounded: MetricComparison
    """The comparison with its CI at the family-wise level (checks of family "ci_bound")."""
    family: int
    """How many hypotheses the correction covers, over every rule."""

    @property
    def paired(self) -> Paired:
        return self.comparison.paired

    @property
    def gain(self) -> float:
        """> 0: the candidate is better in the metric's direction."""
        p = self.paired
        return p.delta if p.higher_is_better else -p.delta

    def result(
        self, check: str, threshold: float, observed: float, ok: bool, reason: str, *,
        margin: float | None = None, comp: MetricComparison | None = None, p_raw: float | None = None,
        p_adjusted: float | None = None,
    ) -> CheckResult:  # fmt: skip
        """A row, with the power at `margin` (underpowered: a warning, or a failure by policy)."""
        rule, policy = self.rule, self.policy
        comp = comp or self.comparison
        fail_weak = policy.fail_underpowered if rule.fail_underpowered is None else rule.fail_underpowered
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
        label = "" if rule.subset == "all" else " [clean subset]"
        return CheckResult(self.suite, comp.metric, check, threshold, observed, ok, reason + label, comp,
                           p_raw, p_adjusted, mde, need, warning, rule.subset)  # fmt: skip


@dataclass
class SuiteContext:
    """One rule on one suite: the two runs compared."""

    store: Store
    rule: Rule
    suite: str
    baseline: RunRecord
    candidate: RunRecord

    def result(self, check: str, threshold: float, observed: float, ok: bool, reason: str) -> CheckResult:
        return CheckResult(self.suite, "(suite)", check, threshold, observed, ok, reason, None)

    @cached_property
    def contaminated(self) -> int | None:
        """Suite examples a stored contamination scan found in training data (None: no scan)."""
        from harness.store.contamination import contaminated_ids, has_scan

        if not has_scan(self.store, self.baseline.suite_id):
            return None
        return len(contaminated_ids(self.store, self.baseline.suite_id))

    @cached_property
    def degenerate(self) -> Degenerate | None:
        """Identical and prompt-echoing outputs (None: no generated text to look at)."""
        from harness.gate.degenerate import degenerate

        return degenerate(self.store, self.baseline.run_id, self.candidate.run_id)


@dataclass
class LoadContext:
    """One load rule: the candidate's (and, for comparative checks, the baseline's) load run at
    the rule's level: (load run id, level row of harness.store.load.levels)."""

    store: Store
    rule: Rule
    level: str
    """The level in words (the `metric` column of load rows)."""
    candidate: tuple[str, dict[str, Any]]
    baseline: tuple[str, dict[str, Any]] | None = None

    def result(
        self, check: str, threshold: float, observed: float | None, ok: bool, reason: str
    ) -> CheckResult:
        """A row of the load table; the reason names the candidate's load run."""
        obs = math.nan if observed is None else float(observed)
        return CheckResult(
            LOAD_SUITE, self.level, check, threshold, obs, ok, f"{reason} ({self.candidate[0]})", None
        )


LOAD_SUITE = "load"
"""The `suite` column of load checks in every gate output."""
