"""The gate check registry: every rule key belongs to a registered check, a check registered at
run time becomes a policy key with located errors, and the gate's modules import without a cycle."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.errors import UserError
from harness.gate.checks import GATE_CHECKS, checks, gate_check, keys_of
from harness.gate.policy import Rule, load_policy, sync_rule_fields
from harness.gate.result import CheckResult

GATE = Path(__file__).resolve().parents[1] / "harness" / "gate"
SETTINGS = {"load", "suite", "metric", "significance", "subset", "fail_underpowered", "test", "ci"}


@pytest.fixture
def registry() -> Iterator[None]:
    snap = GATE_CHECKS.snapshot()
    yield
    GATE_CHECKS.restore(snap)
    sync_rule_fields()


def test_every_rule_key_is_a_registered_check_or_a_setting():
    keys = {k for c in checks() for k in c.all_keys()}
    assert set(Rule.model_fields) == SETTINGS | keys
    assert len(checks()) == 21
    assert [c.name for c in checks("metric")] == [
        "min", "max", "min_delta", "max_drop", "non_inferior", "superior", "max_error_rate",
    ]  # fmt: skip
    assert keys_of("metric")[-3:] == ("max_drop_rel", "non_inferior_rel", "superior_rel")


def test_a_check_registered_at_run_time_is_a_policy_key(registry, tmp_path):
    @gate_check("max_n", "metric", {"max_n": int | None})
    def max_n(ctx) -> Iterator[CheckResult]:
        yield ctx.result(
            "max_n", ctx.rule.value("max_n"), ctx.paired.n, ctx.paired.n <= ctx.rule.value("max_n"), ""
        )

    policy = tmp_path / "p.yaml"
    policy.write_text("rules:\n  - {max_n: 10}\n")
    pol, _ = load_policy(policy)
    assert pol.rules[0].value("max_n") == 10 and pol.rules[0].metric_checks() == ["max_n"]
    policy.write_text("rules:\n  - suite: qa\n    max_n: -x\n")
    with pytest.raises(UserError) as e:
        load_policy(policy)
    assert e.value.line == 3 and e.value.field == "rules.0.max_n"
    policy.write_text("rules:\n  - {max_nn: 10}\n")
    with pytest.raises(UserError, match="did you mean 'max_n'"):
        load_policy(policy)


def test_an_unregistered_check_is_no_longer_a_key(registry, tmp_path):
    gate_check("gone", "suite", {"gone": float | None})(lambda ctx: [])
    sync_rule_fields()
    assert "gone" in Rule.model_fields
    GATE_CHECKS.restore({k: v for k, v in GATE_CHECKS.snapshot().items() if k != "gone"})
    policy = tmp_path / "p.yaml"
    policy.write_text("rules:\n  - {gone: 1.0}\n")
    with pytest.raises(UserError, match="unknown key"):
        load_policy(policy)


def _imports(path: Path) -> set[str]:
    """harness.gate modules a module imports at run time, at any level (function-level imports
    included; `if TYPE_CHECKING:` blocks, which only name types, left out)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            node.body = []
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("harness.gate"):
            mod = node.module
            found |= {f"{mod}.{a.name}" if mod == "harness.gate" else mod for a in node.names}
    return {m.removeprefix("harness.gate.") for m in found if m != "harness.gate"}


def test_the_gate_modules_import_without_a_cycle():
    graph = {p.stem: _imports(p) & {q.stem for q in GATE.glob("*.py")} for p in GATE.glob("*.py")}
    graph.pop("__init__")
    for start in graph:
        seen, stack = set(), [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in graph.get(node, ()):
                assert nxt != start, f"import cycle: {' -> '.join([*path, nxt])}"
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
