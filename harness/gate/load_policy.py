"""The load part of a gate rule (issue #26): a level selector and the checks made at it.

A rule with `load: {concurrency: 4}` (or `{rate: 2}`) is a load rule: its checks read the
stored load runs of each side at that level (`harness.gate.load_rules`), and its
`max_error_rate` is the share of failed requests under load, not of failed examples.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, model_validator

from harness.config import Strict


def _fraction(v: Any) -> Any:
    if isinstance(v, str) and v.strip().endswith("%"):
        try:
            return float(v.strip()[:-1]) / 100
        except ValueError:
            raise ValueError(f"expected a percentage like 10% or a fraction like 0.1, not '{v}'") from None
    return v


Share = Annotated[float, BeforeValidator(_fraction), Field(ge=0)]


class LoadLevelRef(Strict):
    """Which level of a load run a rule reads: one of concurrency or rate."""

    concurrency: int | None = Field(None, ge=1)
    """The closed-loop level with this many requests in flight."""
    rate: float | None = Field(None, gt=0)
    """The open-loop level at this many arrivals per second."""

    @model_validator(mode="after")
    def _one(self) -> LoadLevelRef:
        if (self.concurrency is None) == (self.rate is None):
            raise ValueError("load: give one of concurrency (closed loop) or rate (open loop)")
        return self

    def mode_value(self) -> tuple[str, float]:
        if self.concurrency is not None:
            return "concurrency", float(self.concurrency)
        return "rate", float(self.rate or 0)

    @property
    def label(self) -> str:
        mode, value = self.mode_value()
        return f"concurrency {value:g}" if mode == "concurrency" else f"rate {value:g}/s"


class LoadChecks(Strict):
    """Fields of a gate rule that apply under load."""

    load: LoadLevelRef | None = None
    """The load level this rule's checks read (makes the rule a load rule)."""
    max_p95_latency_s: float | None = Field(None, gt=0)
    """Largest p95 of the candidate's end-to-end latency at the level, in seconds."""
    max_p99_latency_s: float | None = Field(None, gt=0)
    """Largest p99 of the candidate's end-to-end latency at the level, in seconds."""
    max_ttft_p95_s: float | None = Field(None, gt=0)
    """Largest p95 of the candidate's time to first token at the level, in seconds."""
    min_throughput_rps: float | None = Field(None, ge=0)
    """Fewest successful requests per second the candidate must serve at the level."""
    min_output_tokens_per_s: float | None = Field(None, ge=0)
    """Fewest output tokens per second the candidate must produce at the level."""
    max_p95_slowdown_rel: Share | None = None
    """The candidate's p95 may exceed the baseline's by at most this share (`10%`): passes only
    when the upper bound of the bootstrap CI of the p95 difference is within it."""
    max_throughput_drop_rel: Share | None = None
    """The candidate's requests/s may fall below the baseline's by at most this share (`10%`)."""

    def load_checks(self) -> list[str]:
        return [c for c in LOAD_CHECKS if getattr(self, c) is not None]


LOAD_CHECKS = (
    "max_p95_latency_s", "max_p99_latency_s", "max_ttft_p95_s", "min_throughput_rps",
    "min_output_tokens_per_s", "max_p95_slowdown_rel", "max_throughput_drop_rel",
)  # fmt: skip
COMPARATIVE = frozenset({"max_p95_slowdown_rel", "max_throughput_drop_rel"})


def check_load_rule(rule: Any) -> Any:
    """Validation of a rule with load fields: a level, at least one check, nothing else."""
    if rule.load is None:
        raise ValueError(
            f"{rule.load_checks()[0]} is a load check: give the level with load: {{concurrency: N}}"
        )
    others = [c for c in rule.metric_checks() + rule.suite_checks() if c != "max_error_rate"]
    if others:
        raise ValueError(f"a load rule (load: …) holds load checks only, not {', '.join(others)}")
    if rule.suite != "*" or rule.metric != "*":
        raise ValueError("a load rule reads the sides' load runs: suite and metric do not apply")
    if not rule.load_checks() and rule.max_error_rate is None:
        raise ValueError(f"a load rule needs at least one of {', '.join(LOAD_CHECKS)}, max_error_rate")
    return rule
