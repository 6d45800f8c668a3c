"""Task metrics. Importing this package registers every built-in metric in METRICS."""

from suites.metrics import classification, corpus, llamafactory, structured, text  # noqa: F401  (registers metrics)
from suites.metrics.base import METRICS, ExampleView, MetricResult, Scorer
from suites.metrics.llamafactory import PRESETS

__all__ = ["METRICS", "PRESETS", "ExampleView", "MetricResult", "Scorer"]
