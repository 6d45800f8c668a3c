"""The gate check registry: every rule key belongs to a registered check, a check registered at
run time becomes a policy key with located errors, and the gate's modules import without a cycle."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from harness.errors import UserError
from harness.gate import run_gate
from harness.gate.checks import GATE_CHECKS, Family, MetricContext, checks, gate_check, keys_of
from harness.gate.policy import Rule, load_policy, sync_rule_fields
from harness.gate.result import CheckResult
from harness.store import Store
from tests.test_gate import N, _make_store

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


def test_the_built_ins_declare_their_part_in_the_family():
    fam = {c.name: (c.family, c.family_when) for c in checks() if c.family is not None}
    assert fam == {
        "max_drop": ("p_value", ("significance",)),
        "non_inferior": ("ci_bound", ()),
        "superior": ("ci_bound", ()),
    }
    with pytest.raises(ValueError, match="only metric checks"):
        gate_check("noisy_suite", "suite", {"noisy_suite": float | None}, family="p_value")
    with pytest.raises(ValueError, match="family must be one of"):
        gate_check("odd", "metric", {"odd": float | None}, family="q_value")  # type: ignore[arg-type]


def _register_plugin_tests(family: dict[str, Family | None]) -> None:
    """Two checks from outside the built-ins: one tests the paired p-value against a level, one
    decides on the lower CI bound of the gain; `family` says which declare their part."""

    @gate_check("differs_at", "metric", {"differs_at": float | None}, family=family["differs_at"])
    def differs_at(ctx: MetricContext) -> Iterator[CheckResult]:
        level, p = ctx.rule.value("differs_at"), ctx.paired.p_value
        decided = p if ctx.p_adjusted is None else ctx.p_adjusted
        yield ctx.result(
            "differs_at", level, decided, decided < level, "", p_raw=p, p_adjusted=ctx.p_adjusted
        )

    @gate_check("gain_above", "metric", {"gain_above": float | None}, family=family["gain_above"])
    def gain_above(ctx: MetricContext) -> Iterator[CheckResult]:
        b = ctx.bounded.paired
        bar = ctx.rule.value("gain_above")
        yield ctx.result("gain_above", bar, b.ci_low, b.ci_low > bar, "", comp=ctx.bounded)


@pytest.mark.parametrize("declared", [True, False])
def test_a_plugin_check_joins_the_holm_family_by_its_declaration(registry, tmp_path, declared):
    _register_plugin_tests(
        {"differs_at": "p_value", "gain_above": "ci_bound"}
        if declared
        else dict.fromkeys(("differs_at", "gain_above"))
    )
    noise = np.random.default_rng(3).normal(-0.02, 0.08, N)
    db = _make_store(tmp_path / "g.duckdb", lambda b: np.clip(b + noise, 0, 1), cand_ppl_factor=1.03)
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "correction: holm\nrules:\n"
        "  - {suite: qa, metric: '*', max_drop: 0.0, significance: 0.05}\n"  # two built-in p-values
        "  - {suite: text, metric: perplexity, differs_at: 0.05}\n"
        "  - {suite: qa, metric: token_f1, ci: t, gain_above: -0.2}\n"
    )
    pol, doc = load_policy(policy)
    with Store(db) as s:
        res = run_gate(s, pol, doc, ["base"], ["cand"])
    drops = [c for c in res.checks if c.check == "max_drop"]
    [plugin_p] = [c for c in res.checks if c.check == "differs_at"]
    [plugin_ci] = [c for c in res.checks if c.check == "gain_above"]
    raw = [c.p_value for c in drops]
    assert len(raw) == 2 and plugin_p.p_value is not None
    confidence = plugin_ci.comparison.paired.detail["confidence"]
    if declared:  # Holm over three p-values, the CI bound its last step: multipletests padded with 1.0
        assert res.family == 4
        ref = multipletests([*raw, plugin_p.p_value, 1.0], method="holm")[1][:3]
        assert [c.p_adjusted for c in [*drops, plugin_p]] == pytest.approx(list(ref), rel=1e-12)
        assert confidence == pytest.approx(1 - 0.05 / 4)
    else:  # undeclared: not in the family, so nothing of theirs is corrected
        assert res.family == 2
        ref = multipletests(raw, method="holm")[1]
        assert [c.p_adjusted for c in drops] == pytest.approx(list(ref), rel=1e-12)
        assert plugin_p.p_adjusted is None and confidence == pytest.approx(0.95)
    # the two cases give different numbers: the declaration is what moves them
    other = multipletests([*raw, plugin_p.p_value, 1.0] if not declared else raw, method="holm")[1][:2]
    assert [c.p_adjusted for c in drops] != pytest.approx(list(other), rel=1e-6)


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
