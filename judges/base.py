"""The judge contract: subjects in, verdicts out, every call cached in the store."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import Field, field_validator

from harness.config import Strict
from harness.judging import Judge, MetricInfo, Subject, Verdict
from harness.store import Store
from judges.cache import Judgment, cached_judgments, write_judgments

__all__ = ["DEFAULT_CRITERIA", "Criterion", "EndpointJudge", "Judge", "MetricInfo", "Subject", "Verdict"]

RESERVED = {"total", "rationale", "win", "consistency"}


class Criterion(Strict):
    """One rubric line: points from 0 to max_points."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    """Metric name of this criterion's scores."""
    description: str
    max_points: int = Field(ge=1, le=100)

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, v: str) -> str:
        if v in RESERVED:
            raise ValueError(f"'{v}' is reserved for a judge metric; choose another criterion name")
        return v


DEFAULT_CRITERIA = (
    Criterion(name="accuracy", description="Is the answer factually correct for the question?", max_points=4),
    Criterion(name="completeness", description="Does it answer every part of the question?", max_points=3),
    Criterion(name="clarity", description="Is it clear, direct and well phrased?", max_points=3),
)


class EndpointJudge:
    """What the rubric and pairwise judges share: criteria, a client, and the spec that keys them."""

    kind = ""
    prompt_version = 1
    """Bump in a subclass when its prompt text changes: it is part of every cache key."""

    def __init__(self, criteria: Sequence[Criterion], client: Any, instructions: str | None = None) -> None:
        self.criteria = list(criteria)
        self.client = client
        self.instructions = instructions
        self.identity: str = client.identity

    @property
    def calls(self) -> int:
        return self.client.calls

    def spec(self) -> dict[str, Any]:
        return {
            "judge": self.kind,
            "model": self.identity,
            "criteria": [c.model_dump() for c in self.criteria],
            "instructions": self.instructions,
            "prompt_version": self.prompt_version,
            "max_tokens": self.client.config.max_tokens,
            "temperature": self.client.config.temperature,
        }


def resolve_cached(
    store: Store,
    keyed: Sequence[tuple[str, Any]],
    compute: Callable[[list[tuple[str, Any]]], list[Judgment]],
) -> dict[str, Judgment]:
    """Judgments for (key, payload) pairs: cache hits, then `compute` on each distinct miss,
    stored as soon as they are back."""
    cached = cached_judgments(store, (k for k, _ in keyed))
    todo = list({k: (k, p) for k, p in keyed if k not in cached}.values())
    new = compute(todo) if todo else []
    write_judgments(store, new)
    return cached | {j.cache_key: j for j in new}
