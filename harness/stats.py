"""Aggregation, bootstrap confidence intervals and paired comparisons of per-example scores.

Pure numpy/scipy and deterministic: every resampling draws from ``np.random.default_rng(seed)``
through one index generator, so the same seed gives the same resamples whatever the aggregation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any, Literal, cast, get_args

import numpy as np

from harness import corpus
from harness.registry import Entry, Registry

RowStatistic = Callable[[np.ndarray], np.ndarray]
"""f(idx) giving the aggregate of each row of a (rows, n) index matrix."""

AGGREGATIONS: Registry[RowStatistic] = Registry("aggregation")
"""How a metric's per-example scores become one number: name → factory(ScoreArrays) returning
the RowStatistic (the aggregate of all examples, and how the paired bootstrap recomputes it on
each resample). Facts in the entry's info: `mean_of_examples` (the per-example paired tests and
the bca / t intervals fit; the bootstrap resamples value counts), `corpus` (compared with
sacreBLEU's paired tests on stored sufficient statistics), `labels` (needs the predicted and
gold classes), `point` (f(ScoreArrays) -> float when the aggregate of all examples is not the
statistic on the identity resample). A plugin adds one with `@aggregation(name)`."""


def aggregation(
    name: str,
    *,
    mean_of_examples: bool = False,
    corpus: bool = False,
    labels: bool = False,
    point: Callable[[ScoreArrays], float] | None = None,
) -> Callable[[Callable[[ScoreArrays], RowStatistic]], Callable[[ScoreArrays], RowStatistic]]:
    """Decorator: register `factory(scores) -> RowStatistic` as aggregation `name`."""
    return AGGREGATIONS.register(
        name, mean_of_examples=mean_of_examples, corpus=corpus, labels=labels, point=point
    )


PairedTest = Literal[
    "auto",
    "mcnemar",
    "mcnemar_midp",
    "wilcoxon",
    "wilcoxon_pratt",
    "t",
    "permutation",
    "paired_bs",
    "paired_ar",
]
TESTS: tuple[str, ...] = get_args(PairedTest)
"""Paired tests by name. auto: exact McNemar for 0/1 metrics, paired_bs for corpus metrics, the
paired t-test otherwise: each tests the quantity the verdict is about (the delta of the
aggregate). Wilcoxon tests a location shift of the differences, not their mean: by name only."""
QUANTITY = {
    "mcnemar": "the delta of the mean (exact McNemar on the discordant pairs of a 0/1 metric)",
    "mcnemar_midp": "the delta of the mean (mid-p McNemar on the discordant pairs of a 0/1 metric)",
    "t": "the mean delta (paired t-test)",
    "permutation": "the mean delta (paired sign-flip permutation test)",
    "paired_bs": "the delta of the corpus score (sacreBLEU paired bootstrap)",
    "paired_ar": "the delta of the corpus score (sacreBLEU approximate randomization)",
    "wilcoxon": "a location shift of the differences (Wilcoxon signed-rank), NOT the mean delta",
    "wilcoxon_pratt": "a location shift of the differences (Wilcoxon-Pratt), NOT the mean delta",
}
"""What each test's p-value is about: shown beside every verdict, which the CI of the delta decides."""
ANALYTIC_MIN_N = 50_000
"""From this many examples on, ci="auto" on a continuous mean uses the t interval instead of the
percentile bootstrap: at this n they agree to within a few percent of the width (tested to 3% in
tests/test_verdict_gate.py)
and the bootstrap would cost seconds (1,000 gathers of n values)."""
CiMethod = Literal["auto", "bootstrap", "bca", "t"]
CI_METHODS: tuple[str, ...] = get_args(CiMethod)
"""auto: the t interval for test t, else the paired percentile bootstrap (sacreBLEU's resamples
for corpus metrics)."""
# Bound on the (rows, n) resample matrix: keeps peak memory near 100 MB for any n while each
# chunk is still large enough that numpy's per-call overhead is negligible.
_MAX_CHUNK_ELEMENTS = 2**23
_FIELD_DTYPES = {"value": np.float64, "weight": np.float64, "pred": object, "label": object}


@dataclass(frozen=True)
class ScoreArrays:
    """Per-example scores of one metric in one run, aligned by example.

    ``weight`` holds token counts for perplexity; ``pred``/``label`` hold the predicted and gold
    class names for macro F1 (a ``None`` prediction counts as wrong, never as a class);
    ``stats`` (n, k) holds sacreBLEU sufficient statistics for corpus BLEU/chrF, scored by ``corpus``.
    """

    value: np.ndarray
    weight: np.ndarray | None = None
    pred: np.ndarray | None = None
    label: np.ndarray | None = None
    stats: np.ndarray | None = None
    corpus: corpus.CorpusStatistic | None = None
    classes: tuple[str, ...] | None = None
    """Macro F1's declared labels: every one is averaged, 0 where it has neither gold nor
    predictions (sklearn's f1_score with labels=, zero_division=0). None: the labels seen."""

    def __post_init__(self) -> None:
        # Coerce once here so every consumer can rely on dtype, shape and equal lengths.
        if self.stats is not None:
            st = np.asarray(self.stats, dtype=np.int64)
            st = st.reshape(len(st), -1) if st.size else st.reshape(0, 0)
            object.__setattr__(self, "stats", st)
            if len(st) != len(np.asarray(self.value).reshape(-1)):
                raise ValueError(f"ScoreArrays.stats has {len(st)} rows, not {len(self.value)}")
        for name, dtype in _FIELD_DTYPES.items():
            arr = getattr(self, name)
            if arr is not None:
                arr = np.asarray(arr, dtype=dtype).reshape(-1)
                object.__setattr__(self, name, arr)
                if len(arr) != len(self.value):
                    raise ValueError(f"ScoreArrays.{name} has {len(arr)} items, not {len(self.value)}")

    def take(self, idx: np.ndarray) -> ScoreArrays:
        """Return the examples at ``idx`` (an integer index array; repeats allowed)."""
        sub = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("corpus", "classes")}
        taken = {k: (None if v is None else v[idx]) for k, v in sub.items()}
        return ScoreArrays(**cast(dict[str, Any], taken), corpus=self.corpus, classes=self.classes)


def _entry(aggregation: str) -> Entry[RowStatistic]:
    if aggregation not in AGGREGATIONS:
        names = tuple(e.name for e in AGGREGATIONS.entries())
        raise ValueError(f"unknown aggregation {aggregation!r}; expected one of {names}")
    return AGGREGATIONS.get(aggregation)


def is_mean(aggregation: str) -> bool:
    """Whether the aggregate is the mean of per-example values (per-example tests fit)."""
    return bool(_entry(aggregation).info["mean_of_examples"])


def is_corpus(aggregation: str) -> bool:
    """Whether the aggregate is a corpus score from summed statistics (sacreBLEU's tests fit)."""
    return bool(_entry(aggregation).info["corpus"])


def needs_labels(aggregation: str) -> bool:
    """Whether the aggregate needs the predicted and gold classes (macro-F1)."""
    return bool(_entry(aggregation).info["labels"])


def _f1_codes(s: ScoreArrays) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Encode label/pred as integer class codes; a missing prediction becomes -1. Also returns
    how many leading codes are declared labels (all of them average, seen or not)."""
    if s.pred is None or s.label is None:
        raise ValueError("macro_f1 needs ScoreArrays.pred and ScoreArrays.label")
    seen = {str(x) for x in s.label} | {str(x) for x in s.pred if x is not None}
    declared = list(dict.fromkeys(s.classes or ()))
    classes = declared + sorted(seen - set(declared))
    code = {c: i for i, c in enumerate(classes)}
    label = np.fromiter((code[str(x)] for x in s.label), dtype=np.int64, count=len(s.label))
    pred = np.fromiter((-1 if x is None else code[str(x)] for x in s.pred), np.int64, len(s.pred))
    return pred, label, len(classes), len(declared)


def _macro_f1_statistic(s: ScoreArrays) -> Callable[[np.ndarray], np.ndarray]:
    """Return f(idx) giving macro F1 for each row of a (rows, n) index matrix.

    Each example is reduced to the id of its (gold, predicted) pair, so a resample costs one
    gather and one bincount; per-class counts then come from a small (P, K) matrix product.
    Per-class F1 = 2TP / (#gold + #predicted). With declared labels (``ScoreArrays.classes``)
    every declared label is averaged, 0 where a resample has neither gold nor predictions for it
    (sklearn's f1_score with labels=, zero_division=0); without them, classes absent from both
    sides of a resample are left out (sklearn with the labels present in that resample).
    """
    pred, label, k, n_declared = _f1_codes(s)
    pair_ids, inverse = np.unique(label * (k + 1) + (pred + 1), return_inverse=True)
    gold_of, pred_of = pair_ids // (k + 1), pair_ids % (k + 1) - 1
    classes = np.arange(k)
    gold_1h = (gold_of[:, None] == classes).astype(np.float64)
    pred_1h = (pred_of[:, None] == classes).astype(np.float64)  # -1 (no prediction) matches none
    tp_1h = gold_1h * (gold_of == pred_of)[:, None]
    n_pairs = len(pair_ids)

    def macro_f1(idx: np.ndarray) -> np.ndarray:
        rows = idx.shape[0]
        offset = np.arange(rows)[:, None] * n_pairs  # give every row its own bins
        counts = np.bincount((inverse[idx] + offset).ravel(), minlength=rows * n_pairs)
        counts = counts.reshape(rows, n_pairs).astype(np.float64)
        tp, denom = counts @ tp_1h, counts @ gold_1h + counts @ pred_1h
        present = denom > 0
        f1 = np.divide(2.0 * tp, denom, out=np.zeros_like(tp), where=present)
        if n_declared:
            present[:, :n_declared] = True  # a declared label counts even when it never occurs
        return f1.sum(axis=1) / present.sum(axis=1)

    return macro_f1


def _row_statistic(s: ScoreArrays, aggregation: str) -> RowStatistic:
    """Return f(idx) giving the aggregate for each row of a (rows, n) index matrix."""
    return _entry(aggregation).factory(s)


@aggregation("mean", mean_of_examples=True)
def _mean(s: ScoreArrays) -> RowStatistic:
    v = s.value
    return lambda idx: v[idx].mean(axis=1)


@aggregation("perplexity")
def _perplexity(s: ScoreArrays) -> RowStatistic:
    """Token-weighted: exp(sum(w * log v) / sum(w)); a geometric mean without weights."""
    with np.errstate(divide="ignore", invalid="ignore"):
        log_v = np.log(s.value)
    if s.weight is None:  # unweighted: a geometric mean, one gather per resample
        return lambda idx: np.exp(log_v[idx].mean(axis=1))
    w = s.weight
    wlog = w * log_v  # precomputed so a resample is two gathers and two sums

    def ppl(idx: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return np.exp(wlog[idx].sum(axis=1) / w[idx].sum(axis=1))

    return ppl


@aggregation("macro_f1", labels=True)
def _macro_f1(s: ScoreArrays) -> RowStatistic:
    return _macro_f1_statistic(s)


@aggregation("weighted_mean")
def _weighted_mean(s: ScoreArrays) -> RowStatistic:
    """sum(w * v) / sum(w): bits per byte over all bytes."""
    w = s.weight if s.weight is not None else np.ones_like(s.value)
    wv = w * s.value

    def wmean(idx: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return wv[idx].sum(axis=1) / w[idx].sum(axis=1)

    return wmean


def _corpus_statistic(s: ScoreArrays) -> RowStatistic:
    st, cs = _corpus_parts(s)
    return lambda idx: corpus.resample_scores(st, idx, cs).astype(np.float64)


def _corpus_point(s: ScoreArrays) -> float:
    """Corpus scores from exact integer sums, as sacreBLEU."""
    return corpus.corpus_score(*_corpus_parts(s))


for _name in corpus.CORPUS_AGGREGATIONS:
    aggregation(_name, corpus=True, point=_corpus_point)(_corpus_statistic)


def _corpus_parts(s: ScoreArrays) -> tuple[np.ndarray, corpus.CorpusStatistic]:
    if s.stats is None or s.corpus is None:
        raise ValueError("corpus aggregations need ScoreArrays.stats and ScoreArrays.corpus")
    return s.stats, s.corpus


def _point(s: ScoreArrays, aggregation: str, stat: Callable[[np.ndarray], np.ndarray]) -> float:
    """The aggregate of all examples (corpus scores from exact integer sums, as sacreBLEU)."""
    point = _entry(aggregation).info["point"]
    if point is not None:
        return float(point(s))
    return float(stat(np.arange(len(s.value))[None, :])[0])


def aggregate(s: ScoreArrays, aggregation: str) -> float:
    """Aggregate per-example scores into one number ("mean", "perplexity", "macro_f1" or
    "weighted_mean", which is sum(w * v) / sum(w)).

    "perplexity" is token-weighted: exp(sum(w * log v) / sum(w)) with v the per-example perplexity
    and w its token count (equal weights when ``weight`` is None). Empty input gives nan.
    """
    stat = _row_statistic(s, aggregation)
    if len(s.value) == 0:
        return math.nan
    return _point(s, aggregation, stat)


def _boot_indices(n: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Yield the (n_boot, n) bootstrap index matrix in row chunks of bounded size."""
    rng = np.random.default_rng(seed)
    rows = max(1, _MAX_CHUNK_ELEMENTS // max(n, 1))
    for start in range(0, n_boot, rows):
        # uint32 indices: half the memory traffic of int64 in the gather that dominates the cost
        yield rng.integers(0, n, size=(min(rows, n_boot - start), n), dtype=np.uint32)


# Up to this many distinct values, the bootstrap of a mean resamples value counts instead of indices.
_MAX_LEVELS = 64


def _bootstrap_mean(v: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Bootstrap replicates of mean(v).

    Resampling n values with replacement only changes how often each distinct value occurs, so
    for discrete scores (0/1 metrics, paired differences in {-1, 0, 1}) multinomial counts over
    the distinct values give exactly the same distribution in O(n_boot × levels) instead of
    O(n_boot × n). Continuous scores fall back to gathering resampled indices.
    """
    levels, counts = np.unique(v, return_counts=True)
    if len(levels) <= _MAX_LEVELS:
        rng = np.random.default_rng(seed)
        draws = rng.multinomial(len(v), counts / len(v), size=n_boot)
        return draws @ levels / len(v)
    return _bootstrap(len(v), lambda i: v[i].mean(axis=1), n_boot, seed)


def _check_boot_args(n_boot: int, confidence: float) -> None:
    if n_boot < 1:
        raise ValueError("n_boot must be >= 1")
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be in (0, 1)")


def _bootstrap(n: int, stat: Callable[[np.ndarray], np.ndarray], n_boot: int, seed: int) -> np.ndarray:
    return np.concatenate([stat(idx) for idx in _boot_indices(n, n_boot, seed)])


def _percentile_ci(boots: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = 1.0 - confidence
    # nanquantile: a degenerate resample (e.g. zero total tokens) must not poison the interval.
    lo, hi = np.nanquantile(boots, [alpha / 2, 1.0 - alpha / 2])
    return float(lo), float(hi)


@dataclass(frozen=True)
class Summary:
    n: int
    value: float
    stderr: float
    ci_low: float
    ci_high: float


def summarize(
    s: ScoreArrays,
    aggregation: str = "mean",
    *,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Summary:
    """Aggregate with a percentile-bootstrap CI over examples.

    stderr is the analytic std(ddof=1)/sqrt(n) for "mean" and the std of the bootstrap
    replicates otherwise (the replicates' spread already is the standard error; it is never
    divided by sqrt(n_boot)). n == 0 gives nan everywhere; n == 1 gives a zero-width CI.
    """
    _check_boot_args(n_boot, confidence)
    stat = _row_statistic(s, aggregation)
    n = len(s.value)
    if n == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    value = _point(s, aggregation, stat)
    if n == 1:
        return Summary(1, value, math.nan, value, value)
    mean = is_mean(aggregation)
    boots = _bootstrap_mean(s.value, n_boot, seed) if mean else _bootstrap(n, stat, n_boot, seed)
    lo, hi = _percentile_ci(boots, confidence)
    if mean:
        stderr = float(np.std(s.value, ddof=1) / math.sqrt(n))
    else:
        stderr = float(np.nanstd(boots, ddof=1)) if n_boot > 1 else math.nan
    return Summary(n, value, stderr, lo, hi)


@dataclass(frozen=True)
class Paired:
    n: int
    baseline: float
    candidate: float
    delta: float
    ci_low: float
    ci_high: float
    test: str
    """The paired test behind p_value, by name (see TESTS): kept with every comparison."""
    p_value: float
    wins: int
    losses: int
    ties: int
    higher_is_better: bool
    improved: bool | None
    ci_method: str = "bootstrap"
    """How [ci_low, ci_high] was computed: bootstrap (paired percentile), bca or t."""
    detail: dict[str, Any] = field(default_factory=dict)
    """Test settings and extras (resamples, seed, sacreBLEU means and half-widths)."""


def _mcnemar_counts(b: np.ndarray, c: np.ndarray) -> tuple[int, int]:
    if not np.all(np.isin(b, (0.0, 1.0)) & np.isin(c, (0.0, 1.0))):
        raise ValueError("binary=True needs scores that are all 0 or 1")
    return int(np.count_nonzero((b == 0) & (c == 1))), int(np.count_nonzero((b == 1) & (c == 0)))


def _paired_test(b: np.ndarray, c: np.ndarray, binary: bool, test: str = "auto") -> tuple[str, float]:
    """The p-value of one named test on per-example values; p = 1 when nothing moved."""
    if test == "auto":
        test = "mcnemar" if binary else "t"
    if test in ("mcnemar", "mcnemar_midp"):
        gained, lost = _mcnemar_counts(b, c)
        m = gained + lost
        if m == 0:
            return test, 1.0
        st = _scipy_stats()
        # Exact McNemar is a two-sided binomial test of the discordant pairs against p = 1/2.
        p = float(st.binomtest(gained, m, 0.5).pvalue)
        if test == "mcnemar_midp":  # mid-p: half the probability of the observed split
            p = min(
                1.0,
                2.0 * float(st.binom.cdf(min(gained, lost), m, 0.5))
                - float(st.binom.pmf(min(gained, lost), m, 0.5)),
            )
        return test, p
    d = c - b
    if not np.any(d != 0):
        return test, 1.0
    st = _scipy_stats()
    if test in ("wilcoxon", "wilcoxon_pratt"):
        zero = "pratt" if test == "wilcoxon_pratt" else "wilcox"
        return test, float(st.wilcoxon(d, zero_method=zero, alternative="two-sided").pvalue)
    if test == "t":
        if np.ptp(d) <= 1e-12 * max(1.0, abs(float(d[0]))):
            # one shift for every pair: t is undefined (zero spread); the exact sign-flip
            # permutation p-value of n identical differences is 2 / 2^n
            return test, min(1.0, 2.0 * 0.5 ** len(d))
        return test, float(st.ttest_rel(c, b).pvalue)
    raise ValueError(f"unknown paired test {test!r}; expected one of {TESTS}")


def _check_test(test: str, ci: str, aggregation: str, binary: bool) -> None:
    if test not in TESTS:
        raise ValueError(f"unknown paired test {test!r}; expected one of {', '.join(TESTS)}")
    if ci not in CI_METHODS:
        raise ValueError(f"unknown CI method {ci!r}; expected one of {', '.join(CI_METHODS)}")
    if test in ("paired_bs", "paired_ar") and not is_corpus(aggregation):
        raise ValueError(f"test {test} is sacreBLEU's test for corpus metrics, not for {aggregation}")
    per_example = test in ("mcnemar", "mcnemar_midp", "wilcoxon", "wilcoxon_pratt", "t", "permutation")
    if (per_example or ci in ("bca", "t")) and not is_mean(aggregation):
        # These tests treat the per-example values as the data: only right when the metric is their mean.
        what = f"test {test}" if per_example else f"CI {ci}"
        raise ValueError(f"{what} tests a mean of per-example values; {aggregation} is not one")
    if test in ("mcnemar", "mcnemar_midp") and not binary:
        raise ValueError(f"test {test} needs a 0/1 metric")


def compare_paired(
    baseline: ScoreArrays,
    candidate: ScoreArrays,
    *,
    aggregation: str = "mean",
    higher_is_better: bool = True,
    binary: bool = False,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    test: str = "auto",
    ci: str = "auto",
    n_resamples: int | None = None,
) -> Paired:
    """Compare two runs on the same examples with a paired bootstrap CI and a paired test.

    Both sides are resampled with the same indices, so per-example difficulty cancels and the
    CI of delta = aggregate(candidate) - aggregate(baseline) is much narrower than unpaired; a
    non-mean aggregate (macro-F1, token-weighted perplexity, corpus BLEU) is recomputed on every
    resample. ``improved`` is None when the CI covers 0 (or n < 2), else whether delta is in the
    good direction.

    ``test`` names the paired test (TESTS) and ``ci`` the interval (CI_METHODS). Corpus metrics
    use sacreBLEU's resampling (seed 12345 and 1000 resamples unless ``n_resamples``/an explicit
    seed says otherwise) so p-values equal ``sacrebleu.significance.PairedTest``. ``permutation``
    (scipy ``permutation_test``, paired ``samples``) draws ``n_resamples`` (default 9999).
    """
    n = len(baseline.value)
    if len(candidate.value) != n:
        raise ValueError(f"baseline has {n} examples, candidate has {len(candidate.value)}")
    _check_boot_args(n_boot, confidence)
    _check_test(test, ci, aggregation, binary)
    stat_b = _row_statistic(baseline, aggregation)
    stat_c = _row_statistic(candidate, aggregation)
    if n == 0:
        nan = math.nan
        return Paired(0, nan, nan, nan, nan, nan, "none", nan, 0, 0, 0, higher_is_better, None)
    b_val, c_val = _point(baseline, aggregation, stat_b), _point(candidate, aggregation, stat_c)
    delta = c_val - b_val
    detail: dict[str, Any] = {}
    ci_method = "t" if ci == "auto" and test == "t" else ("bootstrap" if ci == "auto" else ci)
    mean = is_mean(aggregation)
    if ci == "auto" and mean and n >= ANALYTIC_MIN_N and not binary:
        # a large continuous sample: the analytic interval (discrete means stay exact and cheap)
        if len(np.unique(candidate.value - baseline.value)) > _MAX_LEVELS:
            ci_method = "t"
    if is_corpus(aggregation):
        test, p, (lo, hi), detail = _corpus_compare(baseline, candidate, test, n_resamples, confidence)
        ci_method = "bootstrap"
    else:
        if n == 1:
            lo = hi = delta
        elif ci_method == "t":
            res = _scipy_stats().ttest_rel(candidate.value, baseline.value)
            ci_t = res.confidence_interval(confidence_level=confidence)
            lo, hi = float(ci_t.low), float(ci_t.high)
            if not (math.isfinite(lo) and math.isfinite(hi)):  # constant differences: no spread
                lo = hi = delta
        elif ci_method == "bca":
            d = candidate.value - baseline.value
            res = _scipy_stats().bootstrap(
                (d,), np.mean, n_resamples=n_boot, confidence_level=confidence,
                method="BCa", random_state=np.random.default_rng(seed),
            )  # fmt: skip
            lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
            if not (math.isfinite(lo) and math.isfinite(hi)):  # BCa is undefined on constant d
                lo = hi = delta
            detail["n_boot"] = n_boot
        elif mean:
            # The mean is linear, so resampling the per-example differences is one gather, not two.
            d = candidate.value - baseline.value
            lo, hi = _percentile_ci(_bootstrap_mean(d, n_boot, seed), confidence)
        else:
            boots = _bootstrap(n, lambda idx: stat_c(idx) - stat_b(idx), n_boot, seed)
            lo, hi = _percentile_ci(boots, confidence)
        if test == "permutation":
            p, detail["n_resamples"] = _permutation_p(baseline.value, candidate.value, n_resamples, seed)
            detail["permutation_type"] = "samples"
        else:
            test, p = _paired_test(baseline.value, candidate.value, binary, test)
    signed = candidate.value - baseline.value
    detail["confidence"] = confidence
    if mean and n >= 2:  # the spread behind a mean delta's power / MDE
        detail["sd_diff"] = float(np.std(signed, ddof=1))
    if not higher_is_better:
        signed = -signed
    wins, losses = int(np.count_nonzero(signed > 0)), int(np.count_nonzero(signed < 0))
    improved: bool | None = None
    if n >= 2 and (lo > 0 or hi < 0):
        improved = (lo > 0) == higher_is_better
    ties = n - wins - losses
    return Paired(n, b_val, c_val, delta, lo, hi, test, p, wins, losses, ties,
                  higher_is_better, improved, ci_method, detail)  # fmt: skip


def _permutation_p(b: np.ndarray, c: np.ndarray, n_resamples: int | None, seed: int) -> tuple[float, int]:
    """scipy's paired permutation test of the mean difference (signs of each pair flipped)."""
    n_res = n_resamples or 9999
    if not np.any(c != b):
        return 1.0, n_res
    res = _scipy_stats().permutation_test(
        (c, b), _mean_difference, permutation_type="samples", vectorized=True,
        n_resamples=n_res, alternative="two-sided", random_state=np.random.default_rng(seed),
    )  # fmt: skip
    return float(res.pvalue), n_res


def _mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x - y, axis=axis)


def _corpus_compare(
    baseline: ScoreArrays, candidate: ScoreArrays, test: str, n_resamples: int | None, confidence: float
) -> tuple[str, float, tuple[float, float], dict[str, Any]]:
    """sacreBLEU's paired bootstrap (and, by name, approximate randomization) on stored statistics."""
    st_b, cs = _corpus_parts(baseline)
    st_c, _ = _corpus_parts(candidate)
    test = "paired_bs" if test == "auto" else test
    # The delta's CI always comes from sacreBLEU's paired bootstrap resamples.
    bs = corpus.paired_test(
        st_b, st_c, cs, test="paired_bs", n_samples=n_resamples if test == "paired_bs" else None
    )
    detail: dict[str, Any] = {
        "seed": bs.seed,
        "bs": bs.n_samples,
        "baseline_mean": bs.baseline_mean,
        "baseline_ci": bs.baseline_ci,
        "candidate_mean": bs.candidate_mean,
        "candidate_ci": bs.candidate_ci,
    }
    p = bs.p_value
    if test == "paired_ar":
        ar = corpus.paired_test(st_b, st_c, cs, test="paired_ar", n_samples=n_resamples)
        p, detail["ar"] = ar.p_value, ar.n_samples
    assert bs.deltas is not None
    return test, p, _percentile_ci(bs.deltas, confidence), detail


def regressions(
    baseline: np.ndarray, candidate: np.ndarray, *, higher_is_better: bool, k: int = 5
) -> np.ndarray:
    """Indices of the (at most) k examples that got worse the most, worst first.

    Only strict regressions are returned; equal drops keep their original order.
    """
    b = np.asarray(baseline, dtype=np.float64).reshape(-1)
    c = np.asarray(candidate, dtype=np.float64).reshape(-1)
    if b.shape != c.shape:
        raise ValueError(f"baseline has {b.size} examples, candidate has {c.size}")
    worse = (b - c) if higher_is_better else (c - b)  # > 0 means the candidate is worse
    idx = np.flatnonzero(worse > 0)  # nan never compares > 0, so unscored examples drop out
    order = np.argsort(-worse[idx], kind="stable")
    return idx[order][: max(k, 0)]


def _scipy_stats():  # imported on first paired test: scipy.stats costs ~1 s at start-up
    from scipy import stats

    return stats
