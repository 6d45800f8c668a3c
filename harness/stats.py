"""Aggregation, bootstrap confidence intervals and paired comparisons of per-example scores.

Pure numpy/scipy and deterministic: every resampling draws from ``np.random.default_rng(seed)``
through one index generator, so the same seed gives the same resamples whatever the aggregation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields

import numpy as np

AGGREGATIONS = ("mean", "perplexity", "macro_f1", "weighted_mean")
# Bound on the (rows, n) resample matrix: keeps peak memory near 100 MB for any n while each
# chunk is still large enough that numpy's per-call overhead is negligible.
_MAX_CHUNK_ELEMENTS = 2**23
_FIELD_DTYPES = {"value": np.float64, "weight": np.float64, "pred": object, "label": object}


@dataclass(frozen=True)
class ScoreArrays:
    """Per-example scores of one metric in one run, aligned by example.

    ``weight`` holds token counts for perplexity; ``pred``/``label`` hold the predicted and gold
    class names for macro F1 (a ``None`` prediction counts as wrong, never as a class).
    """

    value: np.ndarray
    weight: np.ndarray | None = None
    pred: np.ndarray | None = None
    label: np.ndarray | None = None

    def __post_init__(self) -> None:
        # Coerce once here so every consumer can rely on dtype, shape and equal lengths.
        for name, dtype in _FIELD_DTYPES.items():
            arr = getattr(self, name)
            if arr is not None:
                arr = np.asarray(arr, dtype=dtype).reshape(-1)
                object.__setattr__(self, name, arr)
                if len(arr) != len(self.value):
                    raise ValueError(f"ScoreArrays.{name} has {len(arr)} items, not {len(self.value)}")

    def take(self, idx: np.ndarray) -> ScoreArrays:
        """Return the examples at ``idx`` (an integer index array; repeats allowed)."""
        sub = {f.name: getattr(self, f.name) for f in fields(self)}
        return ScoreArrays(**{k: (None if v is None else v[idx]) for k, v in sub.items()})


def _check_aggregation(aggregation: str) -> None:
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {aggregation!r}; expected one of {AGGREGATIONS}")


def _f1_codes(s: ScoreArrays) -> tuple[np.ndarray, np.ndarray, int]:
    """Encode label/pred as integer class codes; a missing prediction becomes -1."""
    if s.pred is None or s.label is None:
        raise ValueError("macro_f1 needs ScoreArrays.pred and ScoreArrays.label")
    classes = sorted({str(x) for x in s.label} | {str(x) for x in s.pred if x is not None})
    code = {c: i for i, c in enumerate(classes)}
    label = np.fromiter((code[str(x)] for x in s.label), dtype=np.int64, count=len(s.label))
    pred = np.fromiter((-1 if x is None else code[str(x)] for x in s.pred), np.int64, len(s.pred))
    return pred, label, len(classes)


def _macro_f1_statistic(s: ScoreArrays) -> Callable[[np.ndarray], np.ndarray]:
    """Return f(idx) giving macro F1 for each row of a (rows, n) index matrix.

    Each example is reduced to the id of its (gold, predicted) pair, so a resample costs one
    gather and one bincount; per-class counts then come from a small (P, K) matrix product.
    Per-class F1 = 2TP / (#gold + #predicted); classes absent from both sides of a resample are
    left out of the average, which is what sklearn does with the labels present in that resample.
    """
    pred, label, k = _f1_codes(s)
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
        return f1.sum(axis=1) / present.sum(axis=1)

    return macro_f1


def _row_statistic(s: ScoreArrays, aggregation: str) -> Callable[[np.ndarray], np.ndarray]:
    """Return f(idx) giving the aggregate for each row of a (rows, n) index matrix."""
    _check_aggregation(aggregation)
    if aggregation == "mean":
        v = s.value
        return lambda idx: v[idx].mean(axis=1)
    if aggregation == "perplexity":
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
    if aggregation == "weighted_mean":  # sum(w * v) / sum(w): bits per byte over all bytes
        w = s.weight if s.weight is not None else np.ones_like(s.value)
        wv = w * s.value

        def wmean(idx: np.ndarray) -> np.ndarray:
            with np.errstate(divide="ignore", invalid="ignore"):
                return wv[idx].sum(axis=1) / w[idx].sum(axis=1)

        return wmean
    return _macro_f1_statistic(s)


def aggregate(s: ScoreArrays, aggregation: str) -> float:
    """Aggregate per-example scores into one number ("mean", "perplexity", "macro_f1" or
    "weighted_mean", which is sum(w * v) / sum(w)).

    "perplexity" is token-weighted: exp(sum(w * log v) / sum(w)) with v the per-example perplexity
    and w its token count (equal weights when ``weight`` is None). Empty input gives nan.
    """
    stat = _row_statistic(s, aggregation)
    n = len(s.value)
    if n == 0:
        return math.nan
    return float(stat(np.arange(n)[None, :])[0])


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


def _bootstrap(n: int, stat: Callable[[np.ndarray], np.ndarray], n_boot: int, seed: int):
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
    value = float(stat(np.arange(n)[None, :])[0])
    if n == 1:
        return Summary(1, value, math.nan, value, value)
    boots = (
        _bootstrap_mean(s.value, n_boot, seed) if aggregation == "mean" else _bootstrap(n, stat, n_boot, seed)
    )
    lo, hi = _percentile_ci(boots, confidence)
    if aggregation == "mean":
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
    p_value: float
    wins: int
    losses: int
    ties: int
    higher_is_better: bool
    improved: bool | None


def _paired_test(b: np.ndarray, c: np.ndarray, binary: bool) -> tuple[str, float]:
    """Exact McNemar for binary scores, Wilcoxon signed-rank otherwise; p = 1 when nothing moved."""
    if binary:
        if not np.all(np.isin(b, (0.0, 1.0)) & np.isin(c, (0.0, 1.0))):
            raise ValueError("binary=True needs scores that are all 0 or 1")
        gained = int(np.count_nonzero((b == 0) & (c == 1)))
        lost = int(np.count_nonzero((b == 1) & (c == 0)))
        if gained + lost == 0:
            return "mcnemar", 1.0
        # Exact McNemar is a two-sided binomial test of the discordant pairs against p = 1/2.
        return "mcnemar", float(_scipy_stats().binomtest(gained, gained + lost, 0.5).pvalue)
    d = c - b
    if not np.any(d != 0):
        return "wilcoxon", 1.0
    res = _scipy_stats().wilcoxon(d, zero_method="wilcox", alternative="two-sided")
    return "wilcoxon", float(res.pvalue)


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
) -> Paired:
    """Compare two runs on the same examples with a paired bootstrap CI and a paired test.

    Both sides are resampled with the same indices, so per-example difficulty cancels and the
    CI of delta = aggregate(candidate) - aggregate(baseline) is much narrower than unpaired.
    ``improved`` is None when the CI covers 0 (or n < 2), else whether delta is in the good
    direction.
    """
    n = len(baseline.value)
    if len(candidate.value) != n:
        raise ValueError(f"baseline has {n} examples, candidate has {len(candidate.value)}")
    _check_boot_args(n_boot, confidence)
    stat_b = _row_statistic(baseline, aggregation)
    stat_c = _row_statistic(candidate, aggregation)
    if n == 0:
        nan = math.nan
        return Paired(0, nan, nan, nan, nan, nan, "none", nan, 0, 0, 0, higher_is_better, None)
    full = np.arange(n)[None, :]
    b_val, c_val = float(stat_b(full)[0]), float(stat_c(full)[0])
    delta = c_val - b_val
    if n == 1:
        lo = hi = delta
    elif aggregation == "mean":
        # The mean is linear, so resampling the per-example differences is one gather, not two.
        d = candidate.value - baseline.value
        lo, hi = _percentile_ci(_bootstrap_mean(d, n_boot, seed), confidence)
    else:
        boots = _bootstrap(n, lambda idx: stat_c(idx) - stat_b(idx), n_boot, seed)
        lo, hi = _percentile_ci(boots, confidence)
    test, p = _paired_test(baseline.value, candidate.value, binary)
    signed = candidate.value - baseline.value
    if not higher_is_better:
        signed = -signed
    wins, losses = int(np.count_nonzero(signed > 0)), int(np.count_nonzero(signed < 0))
    improved: bool | None = None
    if n >= 2 and (lo > 0 or hi < 0):
        improved = (lo > 0) == higher_is_better
    ties = n - wins - losses
    return Paired(n, b_val, c_val, delta, lo, hi, test, p, wins, losses, ties,
                  higher_is_better, improved)  # fmt: skip


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
