"""The load part of a gate rule (issue #26): a level selector and the checks made at it.

A rule with `load: {concurrency: 4}` (or `{rate: 2}`) is a load rule: its checks (the gate
checks of scope `load`, harness.gate.checks_load) read the stored load runs of each side at that
level (`harness.gate.load_rules`), and its `max_error_rate` is the share of failed requests under
load, not of failed examples. What a load rule may hold is checked in harness.gate.policy.
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
    """The field of a gate rule that makes it a load rule; its checks are registered gate checks
    of scope `load` (harness.gate.checks_load)."""

    load: LoadLevelRef | None = None
    """The load level this rule's checks read (makes the rule a load rule)."""
