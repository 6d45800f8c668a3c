"""tunegate from Python: `tunegate.open(store)` reads runs as pandas DataFrames, `tunegate.evaluate`
runs suites (tunegate.api). This package is the top floor: the CLI (tunegate.cli) and the Python
API, the only code that imports every folder. Names are loaded on first use, so `tunegate --help`
does not import pandas."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.suite import register_suite_loader

if TYPE_CHECKING:
    from tunegate.api import Results, evaluate, open

# The top floor wires the core to the suite kinds: imported on the first suite loaded, not here.
register_suite_loader("suites.loader:load_suite")

__all__ = ["Results", "evaluate", "open"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tunegate import api

        return getattr(api, name)
    raise AttributeError(f"module 'tunegate' has no attribute {name!r}")
