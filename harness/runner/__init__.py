"""Run suites on a model: plan → execute (cache, batches) → score → persist."""

from harness.runner.run import RunOptions, RunOutcome, run_suite

__all__ = ["RunOptions", "RunOutcome", "run_suite"]
