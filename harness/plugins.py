"""Plugins: packages that add backends, suite kinds, metrics, aggregations or gate checks.

A package declares an entry point in the `tunegate.plugins` group, naming a module (importing
it registers its units) or a callable (called once, with no arguments, to register them):

    [project.entry-points."tunegate.plugins"]
    my_plugin = "my_plugin"                 # or "my_plugin.hooks:register"

It registers into the same registries tunegate's own units use: `harness.models.registry.BACKENDS`,
`harness.suite.SUITE_KINDS`, `suites.metrics.base.METRICS`, `harness.stats.AGGREGATIONS`,
`harness.gate.checks.GATE_CHECKS`. tunegate's built-ins come in the same way, through the
entry point `tunegate` (pyproject.toml), loaded first.

Loading is lazy: the first lookup of any registry loads every plugin, once; `tunegate --help`
and CLI start-up load none.
"""

from __future__ import annotations

from typing import Any

from harness.errors import UserError

GROUP = "tunegate.plugins"
BUILTIN = "tunegate"
"""The entry point of tunegate's own units (pyproject.toml)."""
BUILTIN_VALUE = "harness.plugins:builtins"

_state: dict[str, Any] = {"loaded": False, "names": []}


def builtins() -> None:
    """tunegate's own gate checks and aggregations (backends register in
    harness.models.registry, suite kinds and metrics when the `suites` package is imported)."""
    import harness.gate.builtin_checks  # noqa: F401  (registers the built-in gate checks)
    import harness.stats  # noqa: F401  (registers the built-in aggregations)


def load_plugins() -> None:
    """Load every `tunegate.plugins` entry point once, built-ins first. Re-entrant: a plugin that
    reads a registry while it registers sees what is registered so far."""
    if _state["loaded"]:
        return
    _state["loaded"] = True
    from importlib.metadata import entry_points

    found = list(entry_points(group=GROUP))
    ours = [ep for ep in found if ep.name == BUILTIN and ep.value == BUILTIN_VALUE]
    if ours:
        _load(BUILTIN, BUILTIN_VALUE, ours[0].load)
    else:  # a source checkout without installed metadata (or another copy's): the same function
        _load(BUILTIN, BUILTIN_VALUE, lambda: builtins)
    for ep in sorted((ep for ep in found if ep.name != BUILTIN), key=lambda ep: ep.name):
        _load(ep.name, ep.value, ep.load)


def loaded() -> list[str]:
    """`name = value` of every plugin loaded so far, in load order."""
    load_plugins()
    return list(_state["names"])


def _load(name: str, value: str, load: Any) -> None:
    import inspect

    try:
        obj = load()
        if callable(obj) and not inspect.ismodule(obj):
            obj()
    except Exception as e:  # an import error or a failing register(): say which plugin
        raise UserError(
            f"tunegate plugin '{name}' (entry point {GROUP}: {name} = {value}) failed to load: "
            f"{type(e).__name__}: {e}"
        ) from e
    _state["names"].append(f"{name} = {value}")
