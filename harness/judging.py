"""The judge contract and the registry of judge types (`judge: {type: NAME, …}` in a suite).

A judge *type* turns the suite's `judge:` section into a working judge: which of the section's
fields it takes, what it checks there, the metrics it scores, the arguments recorded in the
run's measurement record, and the `Judge` it builds. The judge builds the requests to the judge
model and parses the replies into `Verdict`s: scores, or an error (never a 0).

The built-in types (rubric, pairwise, local, auto, deepeval) register from `judges.types`; a
plugin registers its own with `@JUDGES.register("name")` on a class with a no-argument
constructor. This module imports nothing from `judges/` or `suites/`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from harness.registry import Registry

if TYPE_CHECKING:
    from harness.store import Store


@dataclass(frozen=True)
class Subject:
    """What a judge looks at for one example."""

    example_id: str
    question: str
    output: str
    """The judged model's output."""
    reference: str | None = None
    baseline: str | None = None
    """Pairwise: the baseline model's output for the same prompt."""


@dataclass(frozen=True)
class Verdict:
    """A judge's result for one subject: metric values, or an error (then no value at all)."""

    scores: dict[str, float] | None
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricInfo:
    """One metric a judge scores: its name and how to read it."""

    name: str
    higher_is_better: bool = True
    binary: bool = False


class Judge(Protocol):
    """A built judge: subjects in, one verdict per subject out, every call cached in the store."""

    kind: str
    identity: str
    """The judge model, for keys and the store (model@url or a local model id)."""

    @property
    def calls(self) -> int:
        """Judge model calls made so far (cache hits make none)."""
        ...

    def metrics(self) -> list[MetricInfo]: ...

    def spec(self) -> dict[str, Any]:
        """Everything that decides a judgment except the judged text: criteria, prompts, model."""
        ...

    def judge(self, store: Store, subjects: Sequence[Subject]) -> list[Verdict]: ...


class JudgeType(Protocol):
    """One registered judge type. `settings` is the suite's validated `judge:` section
    (`suites.judge.JudgeSpec`: criteria, instructions, endpoint, local_model, baseline, metric,
    options, …)."""

    name: str
    takes: dict[str, str]
    """Fields of the `judge:` section only this type reads → the error another type gets for them."""
    uses_endpoint: bool
    """Whether the judge calls the endpoint (resolved, or refused, before a run starts)."""
    health_metrics: tuple[str, ...]
    """Judge health (judges.health): the scores whose spread and agreement with human labels say
    whether the judge is evidence, best first; the first the run scored is used, else its first
    metric (rubric: total; pairwise: win)."""

    def resolve(self, settings: Any) -> str:
        """The type that actually judges: its own name, or another's (`auto`)."""
        ...

    def check(self, settings: Any) -> None:
        """Refuse settings this type cannot judge with: ValueError naming what is wrong."""
        ...

    def metrics(self, settings: Any) -> list[MetricInfo]: ...

    def measured_args(self, settings: Any) -> dict[str, Any]:
        """What decides this judge's numbers, for the run's measurement record (no secrets)."""
        ...

    def baseline(self, settings: Any) -> str | None:
        """Model spec whose answers are judged beside the model's (pairwise), or None."""
        ...

    def prepare(self, settings: Any) -> None:
        """Checks to run before any generation is paid for (e.g. an optional package)."""
        ...

    def build(self, settings: Any, backend: Any) -> Judge:
        """The judge for one run of the suite on `backend` (the judged model)."""
        ...

    def sanity(self, store: Store, judge: Judge, items: Sequence[dict[str, str]]) -> dict[str, Any]:
        """Judge health's sanity set: have `judge` look at each item's reference and deliberately
        wrong answer (`question`, `reference`, `wrong`) and say whether it tells them apart: `n`,
        `errors` (items with no verdict), `separation` (None when nothing was judged), `tells_apart`,
        and the numbers behind them (harness.store.judge_health.sanity_problem reads them)."""
        ...


JUDGES: Registry[JudgeType] = Registry("judge type")
"""Judge type name → a class building a `JudgeType` (built-ins: `judges.types`)."""


def judge_type(name: str) -> JudgeType:
    """The registered judge type `name` (UserError with did-you-mean when unknown)."""
    return JUDGES.get(name).factory()


def field_owner(name: str) -> JudgeType | None:
    """The first registered judge type that takes the `judge:` field `name` as its own."""
    for n in JUDGES.names():
        jt = judge_type(n)
        if name in jt.takes:
            return jt
    return None
