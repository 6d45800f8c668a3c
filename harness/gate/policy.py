"""Gate policies: which suite × metric must meet which bar for a candidate to ship."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic.fields import FieldInfo

from harness.config import LocatedYaml, Strict
from harness.errors import UserError
from harness.gate.checks import GateCheck, Scope, checks, keys_of
from harness.gate.load_level import LoadChecks
from harness.measurement import MismatchField
from harness.stats import CiMethod, PairedTest  # one list of names: a typo is a located error


class Rule(LoadChecks):  # LoadChecks: the load level (issue #26)
    """Checks applied to every (suite, metric) the globs match.

    The check keys (min, max_drop, judge_min_kappa, max_p95_latency_s …) are the registered gate
    checks' keys (harness.gate.checks), added to this model by `sync_rule_fields`: a plugin's
    check is a policy key like any built-in. "Better" and "drop" follow the metric's direction:
    for perplexity a drop is a rise.
    """

    suite: str = "*"
    """Suite name or glob."""
    metric: str = "*"
    """Metric name or glob."""
    significance: float | None = Field(None, gt=0, lt=1)
    """With max_drop: a drop fails only if the paired test's p-value is below this level. Also the
    rule's alpha: non_inferior/superior use the (1 - alpha) CI, power uses alpha (default 0.05)."""
    subset: Literal["all", "clean"] = "all"
    """clean: decide on the examples no contamination scan found in training data."""
    fail_underpowered: bool | None = None
    """Overrides the policy's fail_underpowered for this rule."""
    test: PairedTest = "auto"
    """The paired test behind `significance` (auto: McNemar for binary metrics, the paired t-test
    for continuous ones, sacreBLEU's paired bootstrap for corpus metrics; harness.stats)."""
    ci: CiMethod = "auto"
    """The interval behind min_delta's CI (auto: paired bootstrap, or t for test t)."""

    @model_validator(mode="after")
    def _has_a_check(self) -> Rule:
        if self.load is not None or self.load_checks():
            return _check_load_rule(self)
        if not self.metric_checks() and not self.suite_checks():
            keys = keys_of("metric") + keys_of("suite")
            raise ValueError(f"a rule needs at least one of {', '.join(keys)}")
        if self.significance is not None and not any(
            self.margin_set(c) for c in ("max_drop", "non_inferior", "superior")
        ):
            raise ValueError("significance applies to max_drop, non_inferior or superior: set one too")
        for check in checks():
            if not check.alternatives:
                continue
            forms = [k for k in check.all_keys() if self.value(k) is not None]
            if len(forms) > 1:
                raise ValueError(f"{forms[0]} and {forms[1]} are two margins for one check: set one")
        return self

    def value(self, key: str) -> Any:
        """The value of a check key (None: not set, or no such check registered)."""
        return getattr(self, key, None)

    def margin_set(self, check: str) -> bool:
        """max_drop | non_inferior | superior: set in absolute or relative form."""
        return self.value(check) is not None or self.value(check + "_rel") is not None

    def margin(self, check: str, baseline: float) -> tuple[float, str]:
        """The check's absolute margin at this baseline value, and how it was set (for the reason)."""
        absolute = self.value(check)
        if absolute is not None:
            return float(absolute), ""
        rel = float(self.value(check + "_rel"))
        value = rel * abs(baseline)
        return value, f" ({rel * 100:.4g}% of the baseline's {abs(baseline):.4g})"

    def metric_checks(self) -> list[str]:
        return [k for k in keys_of("metric") if self.value(k) is not None]

    def suite_checks(self) -> list[str]:
        return [k for k in keys_of("suite") if self.value(k) is not None]

    def load_checks(self) -> list[str]:
        """Keys set that only load checks read (max_error_rate is also a metric check)."""
        shared = set(keys_of("metric")) | set(keys_of("suite"))
        return [k for k in keys_of("load") if k not in shared and self.value(k) is not None]

    def checks(self, scope: Scope) -> list[GateCheck]:
        """The registered checks of `scope` this rule sets, in registration order."""
        return [c for c in checks(scope) if c.is_set(self)]

    @property
    def alpha(self) -> float:
        return 0.05 if self.significance is None else self.significance


def _check_load_rule(rule: Rule) -> Rule:
    """Validation of a rule with load fields: a level, at least one check, nothing else."""
    load_keys = keys_of("load")
    if rule.load is None:
        raise ValueError(
            f"{rule.load_checks()[0]} is a load check: give the level with load: {{concurrency: N}}"
        )
    others = [c for c in rule.metric_checks() + rule.suite_checks() if c not in load_keys]
    if others:
        raise ValueError(f"a load rule (load: …) holds load checks only, not {', '.join(others)}")
    if rule.suite != "*" or rule.metric != "*":
        raise ValueError("a load rule reads the sides' load runs: suite and metric do not apply")
    if all(rule.value(k) is None for k in load_keys):
        shown = [k for k in load_keys if k != "max_error_rate"] + ["max_error_rate"]
        raise ValueError(f"a load rule needs at least one of {', '.join(shown)}")
    return rule


_STATIC = dict(Rule.__pydantic_fields__)
_synced: list[tuple[str, ...]] = [()]


def sync_rule_fields() -> None:
    """Give `Rule` one optional field per key of every registered gate check (plugins
    included), typed as the check declares, then rebuild the policy models. Cheap when nothing
    was registered since the last call."""
    wanted: dict[str, Any] = {}
    for check in checks():
        for key, annotation in check.all_keys().items():
            if key in _STATIC:
                raise UserError(f"gate check '{check.name}' takes the key '{key}', a rule setting")
            wanted.setdefault(key, annotation)
    if tuple(wanted) == _synced[0]:
        return
    fields = dict(_STATIC)
    for key, annotation in wanted.items():
        fields[key] = FieldInfo.from_annotated_attribute(annotation, None)
    Rule.__pydantic_fields__ = fields
    Rule.model_rebuild(force=True)
    GatePolicy.model_rebuild(force=True)
    _synced[0] = tuple(wanted)


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


sync_rule_fields()


def load_policy(path: str | Path) -> tuple[GatePolicy, LocatedYaml]:
    """Parse and validate a policy; errors name the file, line and field."""
    sync_rule_fields()  # checks registered since import (a plugin, a test)
    doc = LocatedYaml(Path(path))
    if not isinstance(doc.data, dict):
        raise UserError("a gate policy must be a YAML mapping", path=path, line=1)
    try:
        return doc.validate(GatePolicy), doc
    except UserError as e:
        raise _did_you_mean(e) from None


def _did_you_mean(e: UserError) -> UserError:
    """An unknown key in a rule: name the closest key a rule takes (a misspelt check)."""
    parts = (e.field or "").split(".")
    if e.detail != UNKNOWN_KEY or len(parts) != 3 or parts[0] != "rules":
        return e
    close = difflib.get_close_matches(parts[2], list(Rule.model_fields), n=1)
    if not close:
        return e
    return UserError(f"{e.detail}; did you mean '{close[0]}'?", path=e.path, line=e.line, field=e.field)


UNKNOWN_KEY = "unknown key (not allowed here)"
"""harness.config.LocatedYaml.validate's message for an extra key."""
