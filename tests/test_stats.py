"""Checks harness.stats against reference implementations on fixed, seeded data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from harness.stats import (
    Paired,
    ScoreArrays,
    Summary,
    aggregate,
    compare_paired,
    regressions,
    summarize,
)


def _ref_macro_f1(label: list[str], pred: list[str | None]) -> float:
    """Textbook macro F1 over classes seen in gold or predictions (sklearn's 0/0 = 0 convention)."""
    classes = sorted(set(label) | {p for p in pred if p is not None})
    f1s = []
    for c in classes:
        tp = sum(g == c and p == c for g, p in zip(label, pred, strict=True))
        n_pred = sum(p == c for p in pred)
        n_gold = sum(g == c for g in label)
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_gold if n_gold else 0.0
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return sum(f1s) / len(f1s)


def _f1_scores(label: list[str], pred: list[str | None]) -> ScoreArrays:
    correct = np.array([p == g for p, g in zip(pred, label, strict=True)], dtype=float)
    return ScoreArrays(correct, pred=np.array(pred, dtype=object), label=np.array(label, dtype=object))


# --- aggregate -------------------------------------------------------------------------------


def test_mean_aggregate_and_unknown_aggregation():
    s = ScoreArrays(np.array([1.0, 0.0, 1.0, 1.0]))
    assert aggregate(s, "mean") == 0.75
    with pytest.raises(ValueError, match="unknown aggregation"):
        aggregate(s, "median")
    with pytest.raises(ValueError):
        summarize(s, "median")


def test_perplexity_is_token_weighted():
    rng = np.random.default_rng(1)
    tokens = rng.integers(1, 300, size=200).astype(float)
    nll = rng.uniform(0.5, 4.0, size=200) * tokens  # summed negative log-likelihood per example
    s = ScoreArrays(np.exp(nll / tokens), weight=tokens)
    assert aggregate(s, "perplexity") == pytest.approx(math.exp(nll.sum() / tokens.sum()), rel=1e-12)
    # Without token counts every example weighs the same: the geometric mean of perplexities.
    unweighted = ScoreArrays(np.exp(nll / tokens))
    assert aggregate(unweighted, "perplexity") == pytest.approx(sps.gmean(np.exp(nll / tokens)))


def test_macro_f1_hand_computed():
    label = ["a", "a", "b", "b", "c", "c"]
    pred = ["a", "b", "b", None, "d", "c"]
    # a: 2*1/(1+2)=2/3  b: 2*1/(2+2)=1/2  c: 2/3  d (predicted only): 0; None is no class.
    expected = (2 / 3 + 1 / 2 + 2 / 3 + 0.0) / 4
    s = _f1_scores(label, pred)
    assert aggregate(s, "macro_f1") == pytest.approx(expected, abs=1e-12)
    assert _ref_macro_f1(label, pred) == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match="pred"):
        aggregate(ScoreArrays(s.value), "macro_f1")


def test_macro_f1_matches_sklearn():
    from sklearn import metrics

    rng = np.random.default_rng(3)
    classes = np.array(["neg", "neu", "pos", "other"], dtype=object)
    label = list(classes[rng.integers(0, 3, 300)])
    pred = [None if rng.random() < 0.05 else str(classes[rng.integers(0, 4)]) for _ in label]
    present = sorted(set(label) | {p for p in pred if p is not None})
    expected = metrics.f1_score(
        label, [p if p is not None else "<none>" for p in pred], labels=present, average="macro"
    )
    assert aggregate(_f1_scores(label, pred), "macro_f1") == pytest.approx(expected, abs=1e-12)


def test_macro_f1_random_against_reference():
    rng = np.random.default_rng(4)
    classes = ["x", "y", "z", "w"]
    for _ in range(20):
        n = int(rng.integers(1, 40))
        label = [classes[i] for i in rng.integers(0, 3, n)]
        pred = [None if rng.random() < 0.1 else classes[i] for i in rng.integers(0, 4, n)]
        got = aggregate(_f1_scores(label, pred), "macro_f1")
        assert got == pytest.approx(_ref_macro_f1(label, pred), abs=1e-12)


def test_take_and_length_validation():
    s = ScoreArrays([1, 2, 3], weight=[4, 5, 6])
    t = s.take(np.array([2, 0, 2]))
    assert t.value.tolist() == [3.0, 1.0, 3.0] and t.weight.tolist() == [6.0, 4.0, 6.0]
    assert t.pred is None and t.value.dtype == np.float64
    with pytest.raises(ValueError):
        ScoreArrays([1.0, 2.0], weight=[1.0])


# --- summarize -------------------------------------------------------------------------------


def test_bootstrap_spread_of_mean_matches_analytic_stderr():
    # The replicates' std *is* the standard error; dividing it by sqrt(n_boot) is the classic
    # bug. A 95% percentile CI of a mean must therefore be ~2 * 1.96 * std / sqrt(n) wide.
    x = np.random.default_rng(5).exponential(2.0, size=2_000)
    se = x.std(ddof=1) / math.sqrt(len(x))
    out = summarize(ScoreArrays(x), n_boot=20_000, seed=1)
    assert out.stderr == pytest.approx(se, rel=1e-12)
    assert (out.ci_high - out.ci_low) == pytest.approx(2 * 1.959964 * se, rel=0.04)


def test_bootstrap_stderr_of_non_mean_matches_delta_method():
    # Unweighted perplexity = exp(mean(log v)); its delta-method stderr is ppl * sd(log v)/sqrt(n).
    log_v = np.random.default_rng(6).normal(2.0, 0.5, size=3_000)
    out = summarize(ScoreArrays(np.exp(log_v)), "perplexity", n_boot=10_000, seed=2)
    analytic = math.exp(log_v.mean()) * log_v.std(ddof=1) / math.sqrt(len(log_v))
    assert out.stderr == pytest.approx(analytic, rel=0.04)


def test_ci_contains_true_mean_and_covers_about_95_percent():
    # One fixed sample (any single sample misses 5% of the time, so this one is checked to sit
    # within 1 se of the truth), then the actual coverage over many independent samples.
    x = np.random.default_rng(70).normal(3.0, 2.0, size=1_000)
    assert abs(x.mean() - 3.0) < 2.0 / math.sqrt(len(x))
    big = summarize(ScoreArrays(x), seed=0)
    assert big.ci_low < 3.0 < big.ci_high
    rng = np.random.default_rng(7)
    hits = [summarize(ScoreArrays(rng.normal(3.0, 2.0, size=60)), n_boot=1_000, seed=i) for i in range(300)]
    coverage = np.mean([h.ci_low < 3.0 < h.ci_high for h in hits])
    assert 0.89 <= coverage <= 0.99


@pytest.mark.parametrize("aggregation", ["mean", "perplexity", "macro_f1"])
def test_bootstrap_replicates_equal_looped_reference(aggregation):
    # Small n fits one chunk, so the resamples are exactly default_rng(seed).integers(0, n, (B, n));
    # recomputing each replicate with aggregate() on take() checks the vectorised statistics.
    rng = np.random.default_rng(8)
    # n > stats._MAX_LEVELS distinct values, so the mean takes the index-resampling path too.
    n, n_boot, seed = 97, 400, 11
    label = np.array(["a", "b", "c"], dtype=object)[rng.integers(0, 3, n)]
    pred = np.array(["a", "b", "c", "d", None], dtype=object)[rng.integers(0, 5, n)]
    s = ScoreArrays(rng.uniform(1.5, 30.0, n), weight=rng.integers(1, 50, n), pred=pred, label=label)
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    reps = np.array([aggregate(s.take(row), aggregation) for row in idx])
    out = summarize(s, aggregation, n_boot=n_boot, seed=seed)
    lo, hi = np.quantile(reps, [0.025, 0.975])
    assert (out.ci_low, out.ci_high) == pytest.approx((lo, hi), rel=1e-10)
    if aggregation != "mean":
        assert out.stderr == pytest.approx(reps.std(ddof=1), rel=1e-10)


def test_summarize_is_deterministic_per_seed():
    x = np.random.default_rng(9).random(500)
    a, b = summarize(ScoreArrays(x), seed=3), summarize(ScoreArrays(x), seed=3)
    assert a == b
    assert summarize(ScoreArrays(x), seed=4) != a
    p1 = compare_paired(ScoreArrays(x), ScoreArrays(x**2), seed=3)
    assert p1 == compare_paired(ScoreArrays(x), ScoreArrays(x**2), seed=3)


def test_summarize_edge_sizes():
    empty = summarize(ScoreArrays(np.array([])))
    assert empty.n == 0 and all(math.isnan(v) for v in (empty.value, empty.stderr, empty.ci_low))
    one = summarize(ScoreArrays(np.array([0.4])))
    assert one == Summary(1, 0.4, one.stderr, 0.4, 0.4) and math.isnan(one.stderr)
    with pytest.raises(ValueError):
        summarize(ScoreArrays(np.ones(3)), confidence=1.5)


def test_large_n_vectorised_path_runs():
    x = (np.random.default_rng(10).random(500_000) < 0.3).astype(float)
    out = summarize(ScoreArrays(x), n_boot=1_000, seed=0)
    assert out.n == 500_000
    assert out.ci_low < out.value < out.ci_high and out.ci_high - out.ci_low < 0.01


# --- compare_paired --------------------------------------------------------------------------


def test_mcnemar_exact_matches_binomial_references():
    rng = np.random.default_rng(12)
    base = (rng.random(400) < 0.55).astype(float)
    flip_up = (base == 0) & (rng.random(400) < 0.15)
    flip_down = (base == 1) & (rng.random(400) < 0.05)
    cand = np.where(flip_up, 1.0, np.where(flip_down, 0.0, base))
    out = compare_paired(ScoreArrays(base), ScoreArrays(cand), binary=True)
    gained, lost = int(flip_up.sum()), int(flip_down.sum())
    assert out.test == "mcnemar" and (out.wins, out.losses) == (gained, lost)
    assert out.p_value == pytest.approx(sps.binomtest(gained, gained + lost, 0.5).pvalue)
    hand = min(1.0, 2 * sps.binom.cdf(min(gained, lost), gained + lost, 0.5))
    assert out.p_value == pytest.approx(hand, rel=1e-9)
    from statsmodels.stats import contingency_tables as tables

    table = [[np.sum((base == 1) & (cand == 1)), lost], [gained, np.sum((base == 0) & (cand == 0))]]
    assert out.p_value == pytest.approx(tables.mcnemar(table, exact=True).pvalue, rel=1e-9)


def test_binary_requires_zero_one_scores():
    with pytest.raises(ValueError, match="0 or 1"):
        compare_paired(ScoreArrays([0.0, 0.5]), ScoreArrays([1.0, 1.0]), binary=True)


def test_wilcoxon_matches_scipy():
    rng = np.random.default_rng(13)
    base = rng.normal(0.5, 0.2, 120).round(2)  # rounding creates ties and zero differences
    cand = (base + rng.normal(0.03, 0.05, 120)).round(2)
    cand[:10] = base[:10]
    out = compare_paired(ScoreArrays(base), ScoreArrays(cand), test="wilcoxon")  # by name since #15
    ref = sps.wilcoxon(cand - base, zero_method="wilcox", alternative="two-sided").pvalue
    assert out.test == "wilcoxon" and out.p_value == pytest.approx(ref, rel=1e-12)
    assert out.delta == pytest.approx(cand.mean() - base.mean())


def test_identical_runs_give_p_one_and_no_verdict():
    x = np.random.default_rng(14).random(50).round()
    for binary in (False, True):
        out = compare_paired(ScoreArrays(x), ScoreArrays(x.copy()), binary=binary)
        assert out.p_value == 1.0 and out.delta == 0.0 and out.improved is None
        assert (out.wins, out.losses, out.ties) == (0, 0, 50)


def test_wins_losses_ties_for_lower_is_better_perplexity():
    base = ScoreArrays([10.0, 12.0, 8.0, 9.0, 20.0], weight=[5, 5, 5, 5, 5])
    cand = ScoreArrays([9.0, 12.0, 9.5, 7.0, 15.0], weight=[5, 5, 5, 5, 5])
    out = compare_paired(base, cand, aggregation="perplexity", higher_is_better=False, n_boot=500)
    assert (out.wins, out.losses, out.ties) == (3, 1, 1)  # lower perplexity wins
    assert out.delta == pytest.approx(aggregate(cand, "perplexity") - aggregate(base, "perplexity"))
    assert out.delta < 0 and out.higher_is_better is False


def test_improved_follows_direction():
    rng = np.random.default_rng(15)
    nll = rng.normal(2.0, 0.4, 800)
    tokens = rng.integers(10, 100, 800)
    base = ScoreArrays(np.exp(nll), weight=tokens)
    better = ScoreArrays(np.exp(nll - 0.1 + rng.normal(0, 0.02, 800)), weight=tokens)
    down = compare_paired(base, better, aggregation="perplexity", higher_is_better=False)
    assert down.ci_high < 0 and down.improved is True
    up = compare_paired(base, better, aggregation="perplexity", higher_is_better=True)
    assert up.improved is False


def test_paired_ci_much_narrower_than_unpaired_for_correlated_runs():
    rng = np.random.default_rng(16)
    difficulty = rng.normal(0.5, 0.25, 1_000)  # shared per-example difficulty
    base, cand = difficulty, difficulty + 0.01 + rng.normal(0, 0.02, 1_000)
    paired = compare_paired(ScoreArrays(base), ScoreArrays(cand), seed=1)
    sb, sc = summarize(ScoreArrays(base), seed=1), summarize(ScoreArrays(cand), seed=2)
    unpaired_width = math.hypot(sb.ci_high - sb.ci_low, sc.ci_high - sc.ci_low)
    assert paired.ci_high - paired.ci_low < 0.2 * unpaired_width
    assert paired.improved is True


def test_paired_macro_f1_uses_shared_resamples():
    rng = np.random.default_rng(17)
    n, n_boot, seed = 40, 300, 5
    label = np.array(["p", "q", "r"], dtype=object)[rng.integers(0, 3, n)]
    pb = np.array(["p", "q", "r", None], dtype=object)[rng.integers(0, 4, n)]
    pc = np.where(rng.random(n) < 0.5, label, pb)
    b = ScoreArrays((pb == label).astype(float), pred=pb, label=label)
    c = ScoreArrays((pc == label).astype(float), pred=pc, label=label)
    out = compare_paired(b, c, aggregation="macro_f1", binary=True, n_boot=n_boot, seed=seed)
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    reps = [aggregate(c.take(r), "macro_f1") - aggregate(b.take(r), "macro_f1") for r in idx]
    assert (out.ci_low, out.ci_high) == pytest.approx(tuple(np.quantile(reps, [0.025, 0.975])))


def test_compare_paired_edge_cases():
    with pytest.raises(ValueError, match="examples"):
        compare_paired(ScoreArrays([1.0, 2.0]), ScoreArrays([1.0]))
    empty = compare_paired(ScoreArrays([]), ScoreArrays([]))
    assert isinstance(empty, Paired) and empty.test == "none" and math.isnan(empty.p_value)
    one = compare_paired(ScoreArrays([0.0]), ScoreArrays([1.0]), binary=True)
    assert (one.ci_low, one.ci_high, one.wins) == (1.0, 1.0, 1) and one.improved is None


# --- regressions -----------------------------------------------------------------------------


def test_regressions_worst_first_stable_and_only_worse():
    base = np.array([1.0, 1.0, 0.5, 0.9, 0.2, 1.0, 0.7])
    cand = np.array([0.0, 1.0, 0.9, 0.4, 0.2, 0.0, 0.6])
    # drops: 0 -> 1.0, 3 -> 0.5, 5 -> 1.0 (tie with 0, keeps order), 6 -> 0.1; 2 improved.
    assert regressions(base, cand, higher_is_better=True).tolist() == [0, 5, 3, 6]
    assert regressions(base, cand, higher_is_better=True, k=2).tolist() == [0, 5]
    # Lower-is-better flips the direction: only example 2 got worse (0.5 -> 0.9).
    assert regressions(base, cand, higher_is_better=False).tolist() == [2]
    assert regressions(base, base, higher_is_better=True).size == 0
    with pytest.raises(ValueError):
        regressions(base, cand[:3], higher_is_better=True)


def test_mean_bootstrap_of_discrete_scores_matches_index_resampling():
    # Few distinct values → multinomial counts per value instead of index gathers. Same
    # distribution: its CI must agree with a plain index bootstrap up to Monte-Carlo error.
    rng = np.random.default_rng(5)
    v = (rng.uniform(size=400) < 0.3).astype(float)
    out = summarize(ScoreArrays(v), n_boot=20_000, seed=1)
    idx = np.random.default_rng(2).integers(0, len(v), size=(20_000, len(v)))
    lo, hi = np.quantile(v[idx].mean(axis=1), [0.025, 0.975])
    assert out.ci_low == pytest.approx(lo, abs=0.006) and out.ci_high == pytest.approx(hi, abs=0.006)
    d = rng.choice([-1.0, 0.0, 1.0], size=400, p=[0.2, 0.6, 0.2])
    paired = compare_paired(ScoreArrays(np.zeros(400)), ScoreArrays(d), n_boot=20_000, seed=3)
    lo, hi = np.quantile(d[idx].mean(axis=1), [0.025, 0.975])
    assert paired.ci_low == pytest.approx(lo, abs=0.008) and paired.ci_high == pytest.approx(hi, abs=0.008)
