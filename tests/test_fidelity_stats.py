"""Named paired tests equal their reference implementations; non-mean aggregates are recomputed
per resample (#13). Every reference is called here, on fixed seeded data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import f1_score
from statsmodels.stats.contingency_tables import mcnemar

from harness.stats import ScoreArrays, aggregate, compare_paired


@pytest.fixture(scope="module")
def continuous() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(21)
    base = rng.uniform(0, 1, 60)
    cand = np.clip(base + rng.normal(0.03, 0.1, 60), 0, 1)
    cand[:6] = base[:6]  # zero differences: where wilcox and pratt part ways
    return base, cand


@pytest.fixture(scope="module")
def binary() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    base = (rng.random(80) < 0.5).astype(float)
    cand = np.where(rng.random(80) < 0.2, 1 - base, base)
    return base, cand


def test_paired_t_and_its_ci_equal_ttest_rel(continuous) -> None:
    b, c = continuous
    out = compare_paired(ScoreArrays(b), ScoreArrays(c), test="t")
    ref = sps.ttest_rel(c, b)
    ci = ref.confidence_interval(confidence_level=0.95)
    assert (out.test, out.ci_method) == ("t", "t")
    assert out.p_value == pytest.approx(ref.pvalue, rel=1e-12)
    assert (out.ci_low, out.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-12)
    # Asked for explicitly, the bootstrap CI goes with the t-test p-value.
    boot = compare_paired(ScoreArrays(b), ScoreArrays(c), test="t", ci="bootstrap")
    assert boot.ci_method == "bootstrap" and boot.p_value == out.p_value and boot.ci_low != out.ci_low


def test_permutation_equals_scipy_permutation_test_samples(continuous) -> None:
    b, c = continuous
    out = compare_paired(ScoreArrays(b), ScoreArrays(c), test="permutation", n_resamples=4000, seed=9)
    ref = sps.permutation_test(
        (c, b),
        lambda x, y, axis: np.mean(x - y, axis=axis),
        permutation_type="samples",
        vectorized=True,
        n_resamples=4000,
        alternative="two-sided",
        random_state=np.random.default_rng(9),
    )
    assert out.test == "permutation" and out.detail["permutation_type"] == "samples"
    assert out.p_value == ref.pvalue
    small = compare_paired(ScoreArrays(b[:10]), ScoreArrays(c[:10]), test="permutation")
    exact = sps.permutation_test(
        (c[:10], b[:10]),
        lambda x, y, axis: np.mean(x - y, axis=axis),
        permutation_type="samples",
        vectorized=True,
    )  # 2**10 < 9999: both enumerate every sign flip
    assert small.p_value == pytest.approx(exact.pvalue, rel=1e-12)


def test_bca_ci_equals_scipy_bootstrap_bca(continuous) -> None:
    b, c = continuous
    out = compare_paired(ScoreArrays(b), ScoreArrays(c), ci="bca", n_boot=3000, seed=5)
    ref = sps.bootstrap(
        (c - b,), np.mean, n_resamples=3000, method="BCa", random_state=np.random.default_rng(5)
    ).confidence_interval
    assert out.ci_method == "bca" and out.test == "t"  # auto on a continuous mean: the paired t (#15)
    assert (out.ci_low, out.ci_high) == pytest.approx((ref.low, ref.high), rel=1e-12)


def test_wilcoxon_pratt_equals_scipy(continuous) -> None:
    b, c = continuous
    pratt = compare_paired(ScoreArrays(b), ScoreArrays(c), test="wilcoxon_pratt")
    wilcox = compare_paired(ScoreArrays(b), ScoreArrays(c), test="wilcoxon")
    assert pratt.test == "wilcoxon_pratt" and wilcox.test == "wilcoxon"
    assert pratt.p_value == pytest.approx(sps.wilcoxon(c - b, zero_method="pratt").pvalue, rel=1e-12)
    assert wilcox.p_value == pytest.approx(sps.wilcoxon(c - b, zero_method="wilcox").pvalue, rel=1e-12)
    assert pratt.p_value != wilcox.p_value


def test_mid_p_mcnemar(binary) -> None:
    b, c = binary
    exact = compare_paired(ScoreArrays(b), ScoreArrays(c), binary=True)
    midp = compare_paired(ScoreArrays(b), ScoreArrays(c), binary=True, test="mcnemar_midp")
    table = [
        [np.sum((b == 1) & (c == 1)), np.sum((b == 1) & (c == 0))],
        [np.sum((b == 0) & (c == 1)), np.sum((b == 0) & (c == 0))],
    ]
    ref_exact = mcnemar(table, exact=True).pvalue
    # Mid-p (Fagerland, Lydersen & Laake 2013): the exact p minus the point probability of the split.
    gained, lost = int(table[1][0]), int(table[0][1])
    ref_midp = ref_exact - sps.binom.pmf(min(gained, lost), gained + lost, 0.5)
    assert exact.p_value == pytest.approx(ref_exact, rel=1e-12)
    assert midp.test == "mcnemar_midp" and midp.p_value == pytest.approx(ref_midp, rel=1e-12)
    assert midp.p_value < exact.p_value


def test_tests_that_do_not_fit_the_metric_are_refused(continuous) -> None:
    b, c = continuous
    with pytest.raises(ValueError, match="0/1"):
        compare_paired(ScoreArrays(b), ScoreArrays(c), test="mcnemar_midp")
    ppl = ScoreArrays(np.exp(b), weight=np.ones_like(b))
    with pytest.raises(ValueError, match="mean of per-example"):
        compare_paired(ppl, ppl, aggregation="perplexity", test="t")
    with pytest.raises(ValueError, match="unknown paired test"):
        compare_paired(ScoreArrays(b), ScoreArrays(c), test="ztest")


def test_paired_bootstrap_recomputes_macro_f1_per_resample_as_sklearn() -> None:
    rng = np.random.default_rng(8)
    labels = ["neg", "neu", "pos"]
    n, n_boot, seed = 50, 200, 3
    gold = np.array(labels, dtype=object)[rng.integers(0, 3, n)]
    # None: an output that maps to no label; for sklearn it is its own class outside labels=.
    pick = np.array([*labels, None], dtype=object)
    pb = np.where(rng.random(n) < 0.5, gold, pick[rng.integers(0, 4, n)])
    pc = np.where(rng.random(n) < 0.7, gold, pick[rng.integers(0, 4, n)])
    b = ScoreArrays((pb == gold).astype(float), pred=pb, label=gold)
    c = ScoreArrays((pc == gold).astype(float), pred=pc, label=gold)

    def sk(pred: np.ndarray, g: np.ndarray) -> float:
        present = sorted(set(g) | {p for p in pred if p is not None})  # labels of this resample
        y_pred = ["<unmapped>" if p is None else p for p in pred]
        return f1_score(list(g), y_pred, labels=present, average="macro", zero_division=0)

    assert aggregate(b, "macro_f1") == pytest.approx(sk(pb, gold), abs=1e-12)
    out = compare_paired(b, c, aggregation="macro_f1", binary=True, n_boot=n_boot, seed=seed)
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n), dtype=np.uint32)
    reps = [sk(pc[r], gold[r]) - sk(pb[r], gold[r]) for r in idx]
    assert (out.ci_low, out.ci_high) == pytest.approx(tuple(np.quantile(reps, [0.025, 0.975])), abs=1e-12)
    # A mean of per-example 0/1 values would be a different interval: the aggregate really is recomputed.
    mean_ci = compare_paired(b, c, binary=True, n_boot=n_boot, seed=seed)
    assert (mean_ci.ci_low, mean_ci.ci_high) != (out.ci_low, out.ci_high)


def test_paired_bootstrap_recomputes_token_weighted_perplexity_per_resample() -> None:
    rng = np.random.default_rng(12)
    n, n_boot, seed = 40, 300, 2
    tokens = rng.integers(5, 400, n).astype(float)
    nll_b = rng.uniform(1.0, 3.0, n) * tokens
    nll_c = nll_b - rng.normal(0.05, 0.1, n) * tokens
    b = ScoreArrays(np.exp(nll_b / tokens), weight=tokens)
    c = ScoreArrays(np.exp(nll_c / tokens), weight=tokens)
    out = compare_paired(b, c, aggregation="perplexity", higher_is_better=False, n_boot=n_boot, seed=seed)
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n), dtype=np.uint32)
    reps = [
        math.exp(nll_c[r].sum() / tokens[r].sum()) - math.exp(nll_b[r].sum() / tokens[r].sum()) for r in idx
    ]
    assert (out.ci_low, out.ci_high) == pytest.approx(tuple(np.quantile(reps, [0.025, 0.975])), rel=1e-9)
    assert out.delta == pytest.approx(
        math.exp(nll_c.sum() / tokens.sum()) - math.exp(nll_b.sum() / tokens.sum())
    )
