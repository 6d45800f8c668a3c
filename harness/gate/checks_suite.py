"""Built-in suite checks: contamination, judge health, the trained chat template, degenerate
outputs. Each runs once per suite a rule matches."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import Field

from harness.gate.checks import SuiteContext, gate_check
from harness.gate.judge_checks import judge_checks
from harness.gate.result import CheckResult
from harness.gate.template_rule import template_check

Share = Annotated[float | None, Field(ge=0, le=1)]


def _contamination(ctx: SuiteContext, check: str) -> Iterator[CheckResult]:
    limit = ctx.rule.value(check)
    bad, suite = ctx.contaminated, ctx.suite
    if bad is None:
        yield ctx.result(check, limit, math.nan, False,
                         f"no contamination scan of '{suite}' in this store: run `tunegate data "
                         f"contamination TRAIN_FILE --suite {suite}` (fails closed)")  # fmt: skip
        return
    n = ctx.baseline.n_examples or 0
    if check == "max_contaminated":
        why = f"{bad} of {n} examples found in training data (allowed {limit})"
        yield ctx.result(check, limit, bad, bad <= limit, why)
        return
    rate = bad / n if n else 0.0
    yield ctx.result(check, limit, rate, rate <= limit,
                     f"{bad}/{n} examples ({rate:.1%}) found in training data "
                     f"(allowed {limit:.1%})")  # fmt: skip


@gate_check("max_contaminated", "suite", {"max_contaminated": Annotated[int | None, Field(ge=0)]})
def check_max_contaminated(ctx: SuiteContext) -> Iterator[CheckResult]:
    """Most suite examples a stored contamination scan may have found in training data."""
    return _contamination(ctx, "max_contaminated")


@gate_check("max_contaminated_rate", "suite", {"max_contaminated_rate": Share})
def check_max_contaminated_rate(ctx: SuiteContext) -> Iterator[CheckResult]:
    """The same as a share of the suite's examples."""
    return _contamination(ctx, "max_contaminated_rate")


JUDGE_LIMITS = {
    "judge_max_parse_failures": "max_parse_failures",
    "judge_min_consistency": "min_consistency",
    "judge_min_kappa": "min_kappa",
    "judge_min_separation": "min_separation",
}


@gate_check(
    "judge_health",
    "suite",
    {
        "judge_max_parse_failures": Share,
        "judge_min_consistency": Share,
        "judge_min_kappa": Annotated[float | None, Field(ge=-1, le=1)],
        "judge_min_separation": float | None,
    },
)
def check_judge_health(ctx: SuiteContext) -> list[CheckResult]:
    """Judge suites: largest share of unparseable verdicts, smallest position consistency
    (pairwise), smallest kappa with human labels, smallest sanity separation."""
    limits = {name: ctx.rule.value(key) for key, name in JUDGE_LIMITS.items()}
    return judge_checks(ctx.store, ctx.suite, ctx.baseline, ctx.candidate, limits, "fail", "judge_health")


@gate_check("template_match", "suite", {"template_match": Literal["required"] | None})
def check_template_match(ctx: SuiteContext) -> Iterator[CheckResult]:
    """required: fail a candidate evaluated with a chat template other than the one its adapter
    was trained with (recorded per run; an adapter without a recorded template passes)."""
    yield template_check(ctx.suite, ctx.candidate)


def _degenerate(ctx: SuiteContext, check: str, what: str, words: str) -> Iterator[CheckResult]:
    limit, deg = ctx.rule.value(check), ctx.degenerate
    if deg is None:  # no generated text to look at
        return
    share = deg.share(what)
    why = f"{getattr(deg, what)} of {deg.n} {words} ({share:.0%}, allowed {limit:.0%})"
    yield ctx.result(check, limit, share, share <= limit, why)


@gate_check("max_identical_to_baseline", "suite", {"max_identical_to_baseline": Share})
def check_identical(ctx: SuiteContext) -> Iterator[CheckResult]:
    """Task suites: largest share of the candidate's outputs that may equal the baseline's output
    for the same example (a candidate that did not change)."""
    return _degenerate(
        ctx, "max_identical_to_baseline", "identical", "candidate outputs identical to the baseline's"
    )


@gate_check("max_prompt_echo", "suite", {"max_prompt_echo": Share})
def check_prompt_echo(ctx: SuiteContext) -> Iterator[CheckResult]:
    """Task suites: largest share of the candidate's outputs that may repeat the prompt (or a long
    stretch of it) instead of answering."""
    return _degenerate(ctx, "max_prompt_echo", "echo_candidate", "candidate outputs repeat the prompt")
