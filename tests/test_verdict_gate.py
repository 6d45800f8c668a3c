"""The gate's verdicts you can defend: non-inferiority / superiority by CI bounds (checked against an
interval computed here), Holm / Bonferroni against statsmodels, power and MDE against statsmodels,
one quantity behind verdict and p, and the analytic CI above ANALYTIC_MIN_N against the bootstrap."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

from harness.config import LocatedYaml
from harness.gate import GatePolicy, run_gate
from harness.stats import ANALYTIC_MIN_N, ScoreArrays, compare_paired
from harness.store import Store
from tests.conftest import run_cli
from tests.test_gate import N, _make_store


def _gate(db, tmp_path, text: str):
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    doc = LocatedYaml(path)
    policy = doc.validate(GatePolicy)
    with Store(db) as s:
        return run_gate(s, policy, doc, ["base"], ["cand"])


def _values(db, run: str, metric: str) -> np.ndarray:
    with Store(db) as s:
        rows = s.db.execute(
            "SELECT value FROM scores WHERE run_id = ? AND metric = ? ORDER BY example_id", [run, metric]
        ).fetchall()
    return np.array([r[0] for r in rows])


def _t_ci(d: np.ndarray, conf: float) -> tuple[float, float]:
    """The paired t interval, by hand."""
    half = sps.t.ppf(0.5 + conf / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return d.mean() - half, d.mean() + half


@pytest.fixture()
def noisy(tmp_path):
    rng = np.random.default_rng(11)
    noise = rng.normal(-0.01, 0.08, N)
    return _make_store(tmp_path / "g.duckdb", lambda b: np.clip(b + noise, 0, 1), cand_ppl_factor=1.02)


def test_non_inferior_and_superior_are_decided_by_the_ci_bound(noisy, tmp_path):
    d = _values(noisy, "r-qa-cand", "token_f1") - _values(noisy, "r-qa-base", "token_f1")
    lo, hi = _t_ci(d, 0.95)
    margins = [0.005, 0.03, 0.2]
    rules = "".join(f"  - {{suite: qa, metric: token_f1, ci: t, non_inferior: {m}}}\n" for m in margins)
    rules += "  - {suite: qa, metric: token_f1, ci: t, superior: 0.0}\n"
    res = _gate(noisy, tmp_path, "rules:\n" + rules)
    checks = [c for c in res.checks if c.check in ("non_inferior", "superior")]
    assert [c.observed for c in checks] == pytest.approx([lo] * 4, rel=1e-9)
    assert [c.passed for c in checks[:3]] == [lo > -m for m in margins]
    assert checks[3].passed == (lo > 0) and checks[3].passed is False
    assert len({c.passed for c in checks[:3]}) == 2  # the margins straddle the bound: both outcomes
    # perplexity: lower is better, so the bound in the better direction is -(upper CI of the rise)
    res = _gate(noisy, tmp_path, "rules:\n  - {suite: text, metric: perplexity, non_inferior: 0.1}\n")
    [c] = [c for c in res.checks if c.check == "non_inferior"]
    p = c.comparison.paired
    assert c.observed == pytest.approx(-p.ci_high) and c.passed is (-p.ci_high > -0.1)


def test_few_examples_fail_non_inferiority_where_max_drop_passes(tmp_path):
    # the same small mean drop: within max_drop, but the CI is too wide to rule out a bigger loss
    rng = np.random.default_rng(5)
    noise = rng.normal(0.0, 0.25, N)
    db = _make_store(tmp_path / "g.duckdb", lambda b: b + noise - noise.mean() - 0.02)  # mean drop 0.02
    res = _gate(
        db, tmp_path, "rules:\n  - {suite: qa, metric: token_f1, max_drop: 0.05, non_inferior: 0.05}\n"
    )
    by = {c.check: c for c in res.checks}
    assert by["max_drop"].passed and not by["non_inferior"].passed
    assert "cannot be ruled out" in by["non_inferior"].reason


def test_holm_and_bonferroni_equal_statsmodels_and_widen_the_ci(noisy, tmp_path):
    rules = (
        "  - {suite: qa, metric: '*', max_drop: 0.0, significance: 0.05}\n"
        "  - {suite: text, metric: perplexity, max_drop: 0.0, significance: 0.05}\n"
        "  - {suite: qa, metric: token_f1, ci: t, non_inferior: 0.03}\n"
    )
    plain = _gate(noisy, tmp_path, "rules:\n" + rules)
    raw = [c.p_value for c in plain.checks if c.p_value is not None]
    assert len(raw) == 3 and [c.p_adjusted for c in plain.checks if c.p_value is not None] == raw
    for method in ("holm", "bonferroni"):
        res = _gate(noisy, tmp_path, f"correction: {method}\nrules:\n" + rules)
        tested = [c for c in res.checks if c.p_value is not None]
        assert [c.p_value for c in tested] == raw
        # one family of four: the CI bound counts as Holm's last step (p padded with 1.0)
        ref = multipletests([*raw, 1.0], alpha=0.05, method=method)[1][:3]
        assert [c.p_adjusted for c in tested] == pytest.approx(list(ref), rel=1e-12)
        assert res.family == 4  # three p-values and one CI bound
        [ni] = [c for c in res.checks if c.check == "non_inferior"]
        d = _values(noisy, "r-qa-cand", "token_f1") - _values(noisy, "r-qa-base", "token_f1")
        assert ni.observed == pytest.approx(_t_ci(d, 1 - 0.05 / 4)[0], rel=1e-9)
        assert ni.comparison.paired.detail["confidence"] == pytest.approx(1 - 0.05 / 4)
        assert "widened for 4 tests" in ni.reason
    # the JUnit file carries raw and adjusted p, the Markdown both
    pol = tmp_path / "holm.yaml"
    pol.write_text("correction: holm\nrules:\n" + rules)
    junit, md = tmp_path / "g.xml", tmp_path / "g.md"
    r = run_cli("gate", "--baseline", "base", "--candidate", "cand", "--policy", str(pol), "--db", str(noisy),
                "--junit", str(junit), "--summary", str(md))  # fmt: skip
    assert r.returncode in (0, 1), r.stderr
    props = {
        (case.get("name"), p.get("name")): p.get("value")
        for case in ET.parse(junit).iter("testcase")
        for p in case.iter("property")
    }
    adj = multipletests([*raw, 1.0], method="holm")[1][:3]
    got = sorted(float(v) for (_, k), v in props.items() if k == "p_adjusted")
    assert got == pytest.approx(sorted(adj), rel=1e-5)
    assert sorted(float(v) for (_, k), v in props.items() if k == "p_raw") == pytest.approx(
        sorted(raw), rel=1e-5
    )
    assert "adjusted" in md.read_text() and "holm" in md.read_text()


def test_without_ci_bounds_the_adjustment_is_statsmodels_own(noisy, tmp_path):
    rules = (
        "  - {suite: qa, metric: '*', max_drop: 0.0, significance: 0.05}\n"
        "  - {suite: text, metric: perplexity, max_drop: 0.0, significance: 0.05}\n"
    )
    raw = [c.p_value for c in _gate(noisy, tmp_path, "rules:\n" + rules).checks if c.p_value is not None]
    for method in ("holm", "bonferroni"):
        res = _gate(noisy, tmp_path, f"correction: {method}\nrules:\n" + rules)
        assert res.family == len(raw) == 3
        ref = multipletests(raw, alpha=0.05, method=method)[1]
        assert [c.p_adjusted for c in res.checks if c.p_value is not None] == pytest.approx(
            list(ref), rel=1e-12
        )


def test_mde_and_examples_needed_equal_statsmodels_power(noisy, tmp_path):
    res = _gate(
        noisy, tmp_path, "rules:\n  - {suite: qa, metric: token_f1, max_drop: 0.01, significance: 0.05}\n"
    )
    [c] = res.checks
    d = _values(noisy, "r-qa-cand", "token_f1") - _values(noisy, "r-qa-base", "token_f1")
    es = TTestPower().solve_power(nobs=len(d), alpha=0.05, power=0.8)
    assert c.mde == pytest.approx(es * d.std(ddof=1), rel=1e-5)
    need = TTestPower().solve_power(effect_size=0.01 / d.std(ddof=1), alpha=0.05, power=0.8)
    assert c.n_needed == math.ceil(need) and c.n_needed > N
    # underpowered: a warning by default, a failure with fail_underpowered
    assert c.passed and c.warning and f"~{c.n_needed} examples" in c.warning and res.warnings
    rule = "rules:\n  - {suite: qa, metric: token_f1, max_drop: 0.01, significance: 0.05}\n"
    strict = _gate(noisy, tmp_path, "fail_underpowered: true\n" + rule)
    assert not strict.checks[0].passed and "underpowered" in strict.checks[0].reason
    # a margin the suite can detect: no warning
    wide = _gate(noisy, tmp_path, "rules:\n  - {suite: qa, metric: token_f1, max_drop: 0.5}\n")
    assert wide.checks[0].warning is None and wide.checks[0].mde < 0.5


def test_verdict_and_p_value_are_about_the_same_quantity(tmp_path):
    # skewed differences: the median moves one way, the mean the other (the #15 report's symptom)
    rng = np.random.default_rng(2)
    b = rng.uniform(0.2, 0.8, 200)
    d = np.where(rng.uniform(size=200) < 0.8, -0.01, 0.0)
    d[:20] = 0.35  # a few big gains pull the mean up while most examples lose a little
    c = b + d
    auto = compare_paired(ScoreArrays(b), ScoreArrays(c))
    assert auto.test == "t"
    assert auto.p_value == pytest.approx(sps.ttest_rel(c, b).pvalue, rel=1e-12)
    assert auto.improved is True and auto.p_value < 0.05  # CI and p agree: both about the mean
    wil = compare_paired(ScoreArrays(b), ScoreArrays(c), test="wilcoxon")
    assert wil.p_value < 0.05 and wil.improved is True  # the CI still decides...
    assert np.median(d) < 0  # ...while Wilcoxon's significance is about a shift the other way
    # compare says which number decides and what the p-value tests
    db = _make_store(tmp_path / "g.duckdb", lambda base: np.clip(base + 0.05, 0, 1))
    r = run_cli("compare", "r-qa-base", "r-qa-cand", "--db", str(db))
    assert r.returncode == 0 and "p tests the same delta" in r.stdout and "paired t-test" in r.stdout
    w = run_cli("compare", "r-qa-base", "r-qa-cand", "--db", str(db), "--test", "wilcoxon", "--top", "0")
    assert w.returncode == 0 and "location shift" in w.stdout and "NOT the mean delta" in w.stdout


def test_analytic_ci_above_the_documented_n_agrees_with_the_bootstrap():
    rng = np.random.default_rng(0)
    n = ANALYTIC_MIN_N
    b = rng.uniform(0, 1, n)
    c = b + rng.normal(0.003, 0.15, n)
    fast = compare_paired(ScoreArrays(b), ScoreArrays(c))
    boot = compare_paired(ScoreArrays(b), ScoreArrays(c), ci="bootstrap", n_boot=2000)
    assert fast.ci_method == "t" and boot.ci_method == "bootstrap"
    width = boot.ci_high - boot.ci_low
    assert abs(fast.ci_low - boot.ci_low) < 0.03 * width and abs(fast.ci_high - boot.ci_high) < 0.03 * width
    assert (fast.ci_low, fast.ci_high) == pytest.approx(_t_ci(c - b, 0.95), rel=1e-9)
    # below it, and for discrete scores at any n, the bootstrap stays
    small = compare_paired(ScoreArrays(b[:1000]), ScoreArrays(c[:1000]))
    assert small.ci_method == "bootstrap"
    zero_one = (rng.uniform(size=(2, n)) < 0.5).astype(float)
    assert (
        compare_paired(ScoreArrays(zero_one[0]), ScoreArrays(zero_one[1]), binary=True).ci_method
        == "bootstrap"
    )


def test_policy_errors_are_located(tmp_path):
    db = _make_store(tmp_path / "g.duckdb", lambda b: b)
    for text, needle in [
        ("correction: sidak\nrules:\n  - {max_drop: 0.1}\n", "correction"),
        ("rules:\n  - {non_inferior: -1}\n", "non_inferior"),
        ("rules:\n  - {significance: 0.05, min: 0}\n", "significance applies"),
    ]:
        pol = tmp_path / "bad.yaml"
        pol.write_text(text)
        r = run_cli(
            "gate", "--baseline", "base", "--candidate", "cand", "--policy", str(pol), "--db", str(db)
        )
        assert r.returncode == 2 and needle in r.stderr and "bad.yaml:" in r.stderr, r.stderr
