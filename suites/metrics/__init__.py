"""Task metrics. Importing this package registers every built-in metric in METRICS."""

from suites.metrics import (  # noqa: F401  (registers metrics)
    classification,
    corpus,
    hf_evaluate,
    llamafactory,
    structured,
    text,
)
from suites.metrics.base import METRICS, ExampleView, MetricResult, Scorer
from suites.metrics.llamafactory import PRESETS

__all__ = ["METRICS", "PRESETS", "ExampleView", "MetricResult", "Scorer"]
