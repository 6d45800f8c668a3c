"""The aggregation registry: one entry per aggregation (how to aggregate, how the paired bootstrap
resamples it, which paired tests fit), and one added at run time is used like a built-in."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from harness.stats import AGGREGATIONS, ScoreArrays, aggregate, aggregation, compare_paired, summarize


@pytest.fixture
def registry() -> Iterator[None]:
    snap = AGGREGATIONS.snapshot()
    yield
    AGGREGATIONS.restore(snap)


def test_the_built_ins_are_registered_in_order_with_their_facts():
    entries = AGGREGATIONS.entries()
    assert [e.name for e in entries] == [
        "mean", "perplexity", "macro_f1", "weighted_mean", "corpus_bleu", "corpus_chrf",
    ]  # fmt: skip
    facts = {e.name: {k for k in ("mean_of_examples", "corpus", "labels") if e.info[k]} for e in entries}
    assert facts["mean"] == {"mean_of_examples"} and facts["macro_f1"] == {"labels"}
    assert facts["corpus_bleu"] == facts["corpus_chrf"] == {"corpus"} and facts["perplexity"] == set()


def test_an_aggregation_added_at_run_time_is_aggregated_resampled_and_tested(registry):
    @aggregation("median")
    def median(s: ScoreArrays):
        v = s.value
        return lambda idx: np.median(v[idx], axis=1)

    rng = np.random.default_rng(3)
    b = rng.uniform(0, 1, 200)
    c = b + 0.2
    assert aggregate(ScoreArrays(b), "median") == pytest.approx(float(np.median(b)))
    s = summarize(ScoreArrays(b), "median", n_boot=300)
    assert s.ci_low < s.value < s.ci_high and s.stderr > 0  # the bootstrap of the median itself
    p = compare_paired(ScoreArrays(b), ScoreArrays(c), aggregation="median", n_boot=300)
    assert p.delta == pytest.approx(0.2) and p.ci_low == pytest.approx(0.2) and p.improved
    with pytest.raises(
        ValueError, match="test wilcoxon tests a mean of per-example values; median is not one"
    ):
        compare_paired(ScoreArrays(b), ScoreArrays(c), aggregation="median", test="wilcoxon")
    with pytest.raises(ValueError, match="sacreBLEU's test for corpus metrics, not for median"):
        compare_paired(ScoreArrays(b), ScoreArrays(c), aggregation="median", test="paired_bs")


def test_an_unknown_aggregation_lists_the_registered_ones(registry):
    aggregation("median")(lambda s: lambda idx: np.median(s.value[idx], axis=1))
    with pytest.raises(
        ValueError, match=r"unknown aggregation 'mode'; expected one of \(.*'corpus_chrf', 'median'\)"
    ):
        aggregate(ScoreArrays(np.ones(3)), "mode")
