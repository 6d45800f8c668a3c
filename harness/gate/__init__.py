"""The CI gate: a policy file applied to stored runs → verdict, exit code, JUnit, Markdown.

Gate checks are registered objects (harness.gate.checks); the names below are imported on
first use, so importing one gate module (sides, degenerate) loads no policy model or plugin.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.gate.evaluate import GateResult, run_gate
    from harness.gate.policy import GatePolicy, Rule, load_policy
    from harness.gate.render import junit_xml, markdown
    from harness.gate.result import CheckResult

_WHERE = {
    "CheckResult": "harness.gate.result",
    "GateResult": "harness.gate.evaluate",
    "run_gate": "harness.gate.evaluate",
    "GatePolicy": "harness.gate.policy",
    "Rule": "harness.gate.policy",
    "load_policy": "harness.gate.policy",
    "junit_xml": "harness.gate.render",
    "markdown": "harness.gate.render",
}

__all__ = [
    "CheckResult",
    "GatePolicy",
    "GateResult",
    "Rule",
    "junit_xml",
    "load_policy",
    "markdown",
    "run_gate",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'harness.gate' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
