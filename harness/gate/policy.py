"""Gate policies: which suite × metric must meet which bar for a candidate to ship."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from harness.config import LocatedYaml, Strict
from harness.errors import UserError

# Literal copies of harness.stats.TESTS / CI_METHODS, so a typo is a located policy error.
PairedTest = Literal[
    "auto",
    "mcnemar",
    "mcnemar_midp",
    "wilcoxon",
    "wilcoxon_pratt",
    "t",
    "permutation",
    "paired_bs",
    "paired_ar",
]
CiMethod = Literal["auto", "bootstrap", "bca", "t"]


class Rule(Strict):
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
    """With max_drop: a drop fails only if the paired test's p-value is below this level."""
    max_error_rate: float | None = Field(None, ge=0, le=1)
    """Largest share of the candidate's examples that may have failed (generation/scoring errors)."""
    test: PairedTest = "auto"
    """The paired test behind `significance` (auto: McNemar / Wilcoxon / sacreBLEU paired bootstrap)."""
    ci: CiMethod = "auto"
    """The interval behind min_delta's CI (auto: paired bootstrap, or t for test t)."""

    @model_validator(mode="after")
    def _has_a_check(self) -> Rule:
        checks = (self.min, self.max, self.min_delta, self.max_drop, self.max_error_rate)
        if all(c is None for c in checks):
            raise ValueError("a rule needs at least one of min, max, min_delta, max_drop, max_error_rate")
        if self.significance is not None and self.max_drop is None:
            raise ValueError("significance applies to max_drop: set max_drop too")
        return self


class GatePolicy(Strict):
    """A gate policy file."""

    name: str = "gate"
    required: list[str] = Field(default_factory=list)
    """Suites both sides must have been evaluated on."""
    rules: list[Rule] = Field(min_length=1)


def load_policy(path: str | Path) -> tuple[GatePolicy, LocatedYaml]:
    """Parse and validate a policy; errors name the file, line and field."""
    doc = LocatedYaml(Path(path))
    if not isinstance(doc.data, dict):
        raise UserError("a gate policy must be a YAML mapping", path=path, line=1)
    return doc.validate(GatePolicy), doc
