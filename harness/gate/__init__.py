"""The CI gate: a policy file applied to stored runs → verdict, exit code, JUnit, Markdown."""

from harness.gate.evaluate import CheckResult, GateResult, run_gate
from harness.gate.policy import GatePolicy, Rule, load_policy
from harness.gate.render import junit_xml, markdown

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
