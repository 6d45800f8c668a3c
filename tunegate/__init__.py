"""tunegate from Python: `tunegate.open(store)` reads runs as pandas DataFrames, `tunegate.evaluate`
runs suites. The code lives in `harness.api`; this package is the name users import."""

from harness.api import Results, evaluate, open
from harness.suite import register_suite_loader

# The top floor wires the core to the suite kinds: imported on the first suite loaded, not here.
register_suite_loader("suites.loader:load_suite")

__all__ = ["Results", "evaluate", "open"]
