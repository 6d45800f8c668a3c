"""Suite kinds and their scorers. Importing registers the built-in kinds and metrics."""

from suites import benchmark, judge, perplexity, task  # noqa: F401  (registration)
from suites.base import SUITE_KINDS, Example, Request, SuiteKind
from suites.loader import builtin_suites, content_hash, load_suite, suite_id

__all__ = [
    "SUITE_KINDS",
    "Example",
    "Request",
    "SuiteKind",
    "builtin_suites",
    "content_hash",
    "load_suite",
    "suite_id",
]
