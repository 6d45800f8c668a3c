"""tunegate's own gate checks, registered through the `tunegate` plugin entry point
(harness.plugins.builtins). Import order is registration order: the verdict's row order."""

from harness.gate import checks_load, checks_metric, checks_suite  # noqa: F401  (registration)
