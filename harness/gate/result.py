"""What a gate check produces: one row of the verdict table, one JUnit testcase."""

from __future__ import annotations

from dataclasses import dataclass

from harness.results import MetricComparison


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


UNDERPOWERED = "underpowered"
