"""tunegate from Python: `tunegate.open(store)` reads runs as pandas DataFrames, `tunegate.evaluate`
runs suites. The code lives in `harness.api`; this package is the name users import."""

from harness.api import Results, evaluate, open

__all__ = ["Results", "evaluate", "open"]
