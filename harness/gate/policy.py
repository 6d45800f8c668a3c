"""Gate policies: which suite × metric must meet which bar for a candidate to ship."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from harness.config import LocatedYaml, Strict
from harness.errors import UserError
from harness.gate.load_policy import LoadChecks, check_load_rule
from harness.measurement import MismatchField
from harness.stats import CiMethod, PairedTest  # one list of names: a typo is a located error


def _fraction(v: Any) -> Any:
    """`2%` → 0.02; a number is a fraction already (0.02)."""
    if isinstance(v, str) and v.strip().endswith("%"):
        try:
            return float(v.strip()[:-1]) / 100
        except ValueError:
            raise ValueError(f"expected a percentage like 2% or a fraction like 0.02, not '{v}'") from None
    return v


Fraction = Annotated[float, BeforeValidator(_fraction), Field(ge=0)]
"""A share of the baseline's value: `2%` or 0.02."""


class Rule(LoadChecks):  # LoadChecks: the load level and load checks (issue #26)
    """Checks applied to every (suite, metric) the globs match.

    "Better" and "drop" follow the metric's direction: for perplexity a drop is a rise.
    """

    suite: str = "*"
    """Suite name or glob."""
    metric: str = "*"
    """Metric name or glob."""
    min: float | None = None
    """Absolute floor for the candidate's value."""
    max: float | None = None
    """Absolute ceiling for the candidate's value (e.g. perplexity)."""
    min_delta: float | None = None
    """The candidate must improve on the baseline by at least this much."""
    max_drop: float | None = Field(None, ge=0)
    """The candidate may be worse than the baseline by at most this much (forgetting guard)."""
    significance: float | None = Field(None, gt=0, lt=1)
    """With max_drop: a drop fails only if the paired test's p-value is below this level. Also the
    rule's alpha: non_inferior/superior use the (1 - alpha) CI, power uses alpha (default 0.05)."""
    non_inferior: float | None = Field(None, ge=0)
    """Pass only if the lower bound of the delta's CI (in the better direction) is above -MARGIN."""
    superior: float | None = Field(None, ge=0)
    """Pass only if the lower bound of the delta's CI (in the better direction) is above +MARGIN."""
    max_drop_rel: Fraction | None = None
    """max_drop as a share of the baseline's value (`2%`: 1.2 chrF points at a baseline of 60, 2.0
    at a word perplexity of 100): a margin on the metric's own scale."""
    non_inferior_rel: Fraction | None = None
    """non_inferior's margin as a share of the baseline's value (`2%`)."""
    superior_rel: Fraction | None = None
    """superior's margin as a share of the baseline's value (`2%`)."""
    max_identical_to_baseline: float | None = Field(None, ge=0, le=1)
    """Task suites: largest share of the candidate's outputs that may equal the baseline's output
    for the same example (a candidate that did not change)."""
    max_prompt_echo: float | None = Field(None, ge=0, le=1)
    """Task suites: largest share of the candidate's outputs that may repeat the prompt (or a long
    stretch of it) instead of answering."""
    subset: Literal["all", "clean"] = "all"
    """clean: decide on the examples no contamination scan found in training data."""
    max_contaminated: int | None = Field(None, ge=0)
    """Most suite examples a stored contamination scan may have found in training data."""
    max_contaminated_rate: float | None = Field(None, ge=0, le=1)
    """The same as a share of the suite's examples."""
    judge_max_parse_failures: float | None = Field(None, ge=0, le=1)
    """Judge suites: largest share of judge calls that never gave a valid verdict (either side)."""
    judge_min_consistency: float | None = Field(None, ge=0, le=1)
    """Pairwise judge suites: smallest share of pairs judged the same in both orders."""
    judge_min_kappa: float | None = Field(None, ge=-1, le=1)
    """Judge suites: smallest quadratic-weighted kappa with human labels (fails without labels)."""
    judge_min_separation: float | None = None
    """Judge suites with a sanity set: smallest mean score gap, reference minus wrong answers."""
    template_match: Literal["required"] | None = None
    """required: fail a candidate evaluated with a chat template other than the one its adapter
    was trained with (recorded per run; an adapter without a recorded template passes)."""
    fail_underpowered: bool | None = None
    """Overrides the policy's fail_underpowered for this rule."""
    max_error_rate: float | None = Field(None, ge=0, le=1)
    """Largest share of the candidate's examples that may have failed (generation/scoring errors)."""
    test: PairedTest = "auto"
    """The paired test behind `significance` (auto: McNemar for binary metrics, the paired t-test
    for continuous ones, sacreBLEU's paired bootstrap for corpus metrics; harness.stats)."""
    ci: CiMethod = "auto"
    """The interval behind min_delta's CI (auto: paired bootstrap, or t for test t)."""

    @model_validator(mode="after")
    def _has_a_check(self) -> Rule:
        if self.load is not None or self.load_checks():
            return check_load_rule(self)
        if not self.metric_checks() and not self.suite_checks():
            raise ValueError(f"a rule needs at least one of {', '.join(METRIC_CHECKS + SUITE_CHECKS)}")
        if self.significance is not None and not any(
            self.margin_set(c) for c in ("max_drop", "non_inferior", "superior")
        ):
            raise ValueError("significance applies to max_drop, non_inferior or superior: set one too")
        for c in ("max_drop", "non_inferior", "superior"):
            if getattr(self, c) is not None and getattr(self, c + "_rel") is not None:
                raise ValueError(f"{c} and {c}_rel are two margins for one check: set one")
        return self

    def margin_set(self, check: str) -> bool:
        """max_drop | non_inferior | superior: set in absolute or relative form."""
        return getattr(self, check) is not None or getattr(self, check + "_rel") is not None

    def margin(self, check: str, baseline: float) -> tuple[float, str]:
        """The check's absolute margin at this baseline value, and how it was set (for the reason)."""
        absolute = getattr(self, check)
        if absolute is not None:
            return float(absolute), ""
        rel = float(getattr(self, check + "_rel"))
        value = rel * abs(baseline)
        return value, f" ({rel * 100:.4g}% of the baseline's {abs(baseline):.4g})"

    def metric_checks(self) -> list[str]:
        return [c for c in METRIC_CHECKS if getattr(self, c) is not None]

    def suite_checks(self) -> list[str]:
        return [c for c in SUITE_CHECKS if getattr(self, c) is not None]

    @property
    def alpha(self) -> float:
        return 0.05 if self.significance is None else self.significance


METRIC_CHECKS = (
    "min", "max", "min_delta", "max_drop", "non_inferior", "superior", "max_error_rate",
    "max_drop_rel", "non_inferior_rel", "superior_rel",
)  # fmt: skip
SUITE_CHECKS = (
    "max_contaminated",
    "max_contaminated_rate",
    "judge_max_parse_failures",
    "judge_min_consistency",
    "judge_min_kappa",
    "judge_min_separation",
    "template_match",
    "max_identical_to_baseline",
    "max_prompt_echo",
)


class GatePolicy(Strict):
    """A gate policy file."""

    name: str = "gate"
    correction: Literal["none", "holm", "bonferroni"] = "none"
    """Multiple rules: adjust the p-values of all significance-tested checks together (Holm or
    Bonferroni) and widen the CIs of non_inferior/superior to the family-wise level (Bonferroni)."""
    power: float = Field(0.8, gt=0, lt=1)
    """Power for the minimum detectable effect of each check with a margin."""
    fail_underpowered: bool = False
    """Fail (instead of warn) a check whose margin is below what the suite can detect."""
    judge_health: Literal["fail", "warn", "off"] = "fail"
    """Judge suites whose judge is unhealthy (unparseable, inconsistent, constant) fail by default."""

    @field_validator("judge_health", mode="before")
    @classmethod
    def _yaml_off(cls, v: Any) -> Any:
        return "off" if v is False else v  # YAML 1.1 reads a bare `off` as false

    required: list[str] = Field(default_factory=list)
    """Suites both sides must have been evaluated on."""
    allow_mismatch: list[MismatchField] = Field(default_factory=list)
    """Measurement differences allowed on purpose (harness.measurement): by default a pair of runs
    measured differently is refused (exit 2); an allowed one is gated and every output shows it."""
    rules: list[Rule] = Field(min_length=1)


def load_policy(path: str | Path) -> tuple[GatePolicy, LocatedYaml]:
    """Parse and validate a policy; errors name the file, line and field."""
    doc = LocatedYaml(Path(path))
    if not isinstance(doc.data, dict):
        raise UserError("a gate policy must be a YAML mapping", path=path, line=1)
    return doc.validate(GatePolicy), doc
