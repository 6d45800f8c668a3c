"""The suite-kind contract lives in `harness.suite` (the core never imports `suites/`);
re-exported here for the kinds and for code written against the old location."""

from harness.suite import (
    SUITE_KINDS,
    BoundMetric,
    Example,
    Request,
    SelfDrivenSuite,
    Suite,
    SuiteConfig,
    SuiteKind,
    content_hash,
    example_ids,
    read_jsonl,
    suite_id,
)

__all__ = [
    "SUITE_KINDS",
    "BoundMetric",
    "Example",
    "Request",
    "SelfDrivenSuite",
    "Suite",
    "SuiteConfig",
    "SuiteKind",
    "content_hash",
    "example_ids",
    "read_jsonl",
    "suite_id",
]
