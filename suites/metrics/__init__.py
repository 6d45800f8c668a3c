"""Task metrics. Importing this package registers every built-in metric in METRICS."""

from suites.metrics import classification, structured, text  # noqa: F401  (registers metrics)
from suites.metrics.base import METRICS, ExampleView, MetricResult, Scorer

__all__ = ["METRICS", "ExampleView", "MetricResult", "Scorer"]
