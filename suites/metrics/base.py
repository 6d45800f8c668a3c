"""The metric contract: a registered factory returns a scorer for one example at a time.

    @METRICS.register("exact_match", higher_is_better=True, aggregation="mean", binary=True)
    def exact_match(*, lowercase: bool = True, ...) -> Scorer:
        def score(prediction: str, example: ExampleView) -> MetricResult: ...
        return score

`aggregation` says how per-example values become one number (see harness.stats):
  "mean"       – arithmetic mean of `value`;
  "perplexity" – exp(sum(weight * log(value)) / sum(weight)), token-weighted;
  "macro_f1"   – macro F1 over detail["pred"] / detail["label"];
  "weighted_mean" – sum(weight * value) / sum(weight) (bits per byte over all bytes).
`binary` marks 0/1 metrics (paired test: McNemar). A scorer that cannot score (bad
regex input, missing field) returns MetricResult(error=...), never a 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from harness.registry import Registry


@dataclass(frozen=True)
class ExampleView:
    """What a metric may look at besides the prediction."""

    references: list[str]
    """Reference answers (one or more). Empty when the suite has none."""
    fields: dict[str, Any] = field(default_factory=dict)
    """The raw data record, for metrics that need more than the reference."""


@dataclass(frozen=True)
class MetricResult:
    """One metric on one example."""

    value: float | None = None
    """The score; None only together with `error`."""
    detail: dict[str, Any] | None = None
    """Anything that explains the value (matched label, tokenizer used, parse error…)."""
    error: str | None = None
    """Why the example could not be scored; kept out of the aggregate, counted as an error."""
    weight: float = 1.0
    """Weight in weighted aggregations (token count for perplexity)."""


class Scorer(Protocol):
    def __call__(self, prediction: str, example: ExampleView) -> MetricResult: ...


MetricFactory = Callable[..., Scorer]

METRICS: Registry[Scorer] = Registry("metric")
