"""Built-in metric checks: floors and ceilings, deltas, margins decided by CI bounds, error rate.

"Better" and "drop" follow the metric's direction: for perplexity a drop is a rise.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import Field

from harness.gate.checks import MetricContext, gate_check
from harness.gate.fraction import Fraction
from harness.gate.result import CheckResult

Number = float | None
NonNegative = Annotated[float | None, Field(ge=0)]
Share = Annotated[float | None, Field(ge=0, le=1)]
Relative = Fraction | None


@gate_check("min", "metric", {"min": Number})
def check_min(ctx: MetricContext) -> Iterator[CheckResult]:
    """Absolute floor for the candidate's value."""
    floor, value = ctx.rule.value("min"), ctx.paired.candidate
    ok = value >= floor
    yield ctx.result("min", floor, value, ok, f"candidate {value:.4g} {'>=' if ok else '<'} {floor:g}")


@gate_check("max", "metric", {"max": Number})
def check_max(ctx: MetricContext) -> Iterator[CheckResult]:
    """Absolute ceiling for the candidate's value (e.g. perplexity)."""
    ceiling, value = ctx.rule.value("max"), ctx.paired.candidate
    ok = value <= ceiling
    yield ctx.result("max", ceiling, value, ok, f"candidate {value:.4g} {'<=' if ok else '>'} {ceiling:g}")


@gate_check("min_delta", "metric", {"min_delta": Number})
def check_min_delta(ctx: MetricContext) -> Iterator[CheckResult]:
    """The candidate must improve on the baseline by at least this much."""
    need, gain, p = ctx.rule.value("min_delta"), ctx.gain, ctx.paired
    ok = gain >= need
    yield ctx.result(
        "min_delta", need, gain, ok,
        f"improved by {gain:+.4g} (needs >= {need:g}); 95% {p.ci_method} CI of delta "
        f"[{p.ci_low:.4g}, {p.ci_high:.4g}]",
        margin=need,
    )  # fmt: skip


# max_drop, non_inferior and superior decide a hypothesis, so they count in the policy's Holm /
# Bonferroni family (harness.gate.evaluate): max_drop tests the paired p-value when the rule sets
# a significance level; non_inferior and superior each decide on a CI bound.
@gate_check(
    "max_drop",
    "metric",
    {"max_drop": NonNegative},
    alternatives={"max_drop_rel": Relative},
    family="p_value",
    family_when=("significance",),
)
def check_max_drop(ctx: MetricContext) -> Iterator[CheckResult]:
    """The candidate may be worse than the baseline by at most this much (forgetting guard); with
    `significance`, a drop fails only if the paired test's p-value is below that level."""
    rule, p, p_adj = ctx.rule, ctx.paired, ctx.p_adjusted
    drop = -ctx.gain
    sig = rule.significance
    limit, how = rule.margin("max_drop", p.baseline)
    p_show = _p_text(p, p_adj, ctx.policy.correction) if sig is not None else ""
    what = f"delta {p.delta:+.4g} ({_drop_word(drop)})"
    if drop <= limit:
        yield ctx.result("max_drop", limit, drop, True, f"{what} within {limit:.4g}{how}{p_show}",
                         margin=limit, p_raw=p.p_value if sig else None, p_adjusted=p_adj)  # fmt: skip
    elif sig is not None and not (p_adj is not None and p_adj < sig):
        yield ctx.result(
            "max_drop", limit, drop, True,
            f"{what} beyond {limit:.4g}{how} but not significant{p_show} >= {sig:g}",
            margin=limit, p_raw=p.p_value, p_adjusted=p_adj,
        )  # fmt: skip
    else:
        yield ctx.result(
            "max_drop", limit, drop, False,
            f"{what} exceeds {limit:.4g}{how}{p_show}; "
            f"{p.losses} examples worse, {p.wins} better",
            margin=limit, p_raw=p.p_value if sig else None, p_adjusted=p_adj,
        )  # fmt: skip


def _bound_check(ctx: MetricContext, check: str) -> Iterator[CheckResult]:
    """non_inferior / superior: the lower bound of the gain's CI (at the family-wise level)
    against -margin / +margin."""
    margin, how = ctx.rule.margin(check, ctx.paired.baseline)
    b = ctx.bounded.paired
    lower = b.ci_low if b.higher_is_better else -b.ci_high  # the delta's bound on the bad side
    bar = -margin if check == "non_inferior" else margin
    ok = lower > bar
    conf = b.detail.get("confidence", 0.95)
    correction = ctx.policy.correction
    widened = f", widened for {ctx.family} tests ({correction})" if abs(conf - 0.95) > 1e-12 else ""
    upper = b.ci_high if b.higher_is_better else -b.ci_low
    reason = (
        f"{conf:.4g} {b.ci_method} CI of the gain [{lower:.4g}, {upper:.4g}]{widened}: "
        f"lower bound {'>' if ok else '<='} {bar:+.4g}{how}"
    )
    if not ok:
        what = "a loss" if check == "non_inferior" else "no gain"
        reason += f" ({what} beyond the margin cannot be ruled out)"
    yield ctx.result(check, bar, lower, ok, reason, margin=margin, comp=ctx.bounded)


@gate_check(
    "non_inferior",
    "metric",
    {"non_inferior": NonNegative},
    alternatives={"non_inferior_rel": Relative},
    family="ci_bound",
)
def check_non_inferior(ctx: MetricContext) -> Iterator[CheckResult]:
    """Pass only if the lower bound of the delta's CI (in the better direction) is above -MARGIN."""
    return _bound_check(ctx, "non_inferior")


@gate_check(
    "superior",
    "metric",
    {"superior": NonNegative},
    alternatives={"superior_rel": Relative},
    family="ci_bound",
)
def check_superior(ctx: MetricContext) -> Iterator[CheckResult]:
    """Pass only if the lower bound of the delta's CI (in the better direction) is above +MARGIN."""
    return _bound_check(ctx, "superior")


@gate_check("max_error_rate", "metric", {"max_error_rate": Share})
def check_max_error_rate(ctx: MetricContext) -> Iterator[CheckResult]:
    """Largest share of the candidate's examples that may have failed (generation/scoring errors)."""
    c, p, limit = ctx.comparison, ctx.paired, ctx.rule.value("max_error_rate")
    errors, total = c.n_errors[1], p.n + c.only_in[1] + c.n_errors[1]
    rate = errors / total if total else 0.0
    ok = rate <= limit
    yield ctx.result(
        "max_error_rate", limit, rate, ok,
        f"{errors}/{total} candidate examples errored ({rate:.1%}, allowed {limit:.1%})",
    )  # fmt: skip


def _drop_word(drop: float) -> str:
    """The delta in the metric's better direction, in words (a perplexity rise is a drop)."""
    if drop > 0:
        return f"a drop of {drop:.4g}"
    return "no drop" if drop == 0 else f"a gain of {-drop:.4g}"


def _p_text(p: Any, p_adj: float | None, correction: str) -> str:
    if p_adj is None or correction == "none":
        return f" ({p.test} p={p.p_value:.3g})"
    return f" ({p.test} p={p.p_value:.3g}, {correction}-adjusted {p_adj:.3g})"
