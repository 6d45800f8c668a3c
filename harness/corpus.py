"""Corpus BLEU / chrF from per-example sufficient statistics, and sacreBLEU's paired tests.

A corpus metric stores, per example, the sacreBLEU segment statistics (BLEU: hypothesis and
closest-reference length, matched and total n-grams per order; chrF: hypothesis, reference
and matched counts per character / word n-gram order). They add up: the corpus score is the
metric's formula applied to their column sums, which is exactly what
``sacrebleu``'s ``corpus_score`` computes. Resampling therefore only needs the stored integer
rows, never the text.

The paired tests reproduce ``sacrebleu.significance.PairedTest`` number for number: the same
index / selector draws from ``np.random.default_rng(seed)``, the same dtypes (its bootstrap sums
float32 rows, its approximate randomization int64 rows) and sacreBLEU's own score-from-statistics
code on every resample. What differs is the cost of a resample: a (rows × examples) count matrix
times the (examples × statistics) matrix instead of gathering a (rows × examples × statistics)
tensor.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

CORPUS_AGGREGATIONS = ("corpus_bleu", "corpus_chrf")
SACREBLEU_SEED = 12345
"""sacreBLEU's default seed (``SACREBLEU_SEED``); its paired tests use it unless told otherwise."""
DEFAULT_SAMPLES = {"paired_bs": 1000, "paired_ar": 10000}
"""sacreBLEU's default resamples (bootstrap) and trials (approximate randomization)."""


OUR_TOKENIZERS = {"auto": "13a", "default": "13a", "char": "zh", "char_raw": "none", "jieba": "none"}
"""tunegate's `tokenize:` names → the sacreBLEU tokenizer the statistics are summed under (the
text is tokenized per example before: `auto` is `zh` for CJK references, else `13a`)."""
OUR_TOKENIZER_LABEL = {
    "auto": "auto(zh|13a)",
    "default": "13a",
    "char": "zh",
    "char_raw": "char",
    "jieba": "jieba",
}


def is_corpus(aggregation: str) -> bool:
    return aggregation in CORPUS_AGGREGATIONS


def sacrebleu_metric(aggregation: str, args: dict[str, Any]) -> Any:
    """The sacreBLEU metric object a corpus metric's stored spec args describe."""
    from sacrebleu.metrics import BLEU, CHRF

    if aggregation == "corpus_bleu":
        tok = args.get("tokenize", "13a")
        bleu = BLEU(
            lowercase=bool(args.get("lowercase", False)),
            tokenize=OUR_TOKENIZERS.get(tok, tok),
            smooth_method=args.get("smooth_method", "exp"),
            smooth_value=args.get("smooth_value"),
            max_ngram_order=int(args.get("max_ngram_order", 4)),
            effective_order=False,  # corpus BLEU, as sacrebleu.corpus_bleu
        )
        if tok in OUR_TOKENIZERS:  # the signature names what tokenized the text (auto: per example)
            bleu.tunegate_tokenize = tok
        return bleu
    if aggregation == "corpus_chrf":
        return CHRF(
            char_order=int(args.get("char_order", 6)),
            word_order=int(args.get("word_order", 0)),
            beta=int(args.get("beta", 2)),
            lowercase=bool(args.get("lowercase", False)),
            whitespace=bool(args.get("whitespace", False)),
            eps_smoothing=bool(args.get("eps_smoothing", False)),
        )
    raise ValueError(f"not a corpus aggregation: {aggregation!r}")


def signature(metric: Any, nrefs: int | str) -> str:
    """sacreBLEU's reproducibility signature for `metric` with `nrefs` references ("var": mixed)."""
    # sacreBLEU learns the reference count while caching references; we know it from the rows.
    metric.num_refs = -1 if nrefs == "var" else int(nrefs)
    sig = str(metric.get_signature())
    ours = getattr(metric, "tunegate_tokenize", None)
    if ours is not None:
        import re

        sig = re.sub(r"tok:[^|]*", f"tok:{OUR_TOKENIZER_LABEL.get(ours, ours)}", sig)
    return sig


@dataclass(frozen=True)
class CorpusStatistic:
    """Scores corpora given by summed sufficient statistics, with sacreBLEU's own formula."""

    aggregation: str
    args_json: str
    """The metric's spec args as sorted JSON (hashable, so metric objects are cached)."""

    @property
    def metric(self) -> Any:
        return _metric(self.aggregation, self.args_json)

    def score(self, sums: Any) -> float:
        """The corpus score of one summed statistics vector (list or 1-D array)."""
        return float(self.metric._compute_score_from_stats(sums).score)

    def scores(self, sums: np.ndarray) -> np.ndarray:
        """Scores of each row of a (rows, k) matrix of summed statistics.

        The dtype is whatever sacreBLEU's formula returns (float32 for chrF on float32 sums):
        its means, half-widths and p-values are taken in that dtype, so ours are too.
        """
        compute = self.metric._compute_score_from_stats
        return np.array([compute(row).score for row in sums])


@functools.lru_cache(maxsize=64)
def _metric(aggregation: str, args_json: str) -> Any:
    return sacrebleu_metric(aggregation, json.loads(args_json))


def statistic(aggregation: str, args: dict[str, Any] | None) -> CorpusStatistic:
    return CorpusStatistic(aggregation, json.dumps(args or {}, sort_keys=True, default=str))


def corpus_score(stats: np.ndarray, stat: CorpusStatistic) -> float:
    """corpus_score from stored rows: sacreBLEU sums Python ints, so do we (exact)."""
    if len(stats) == 0:
        return float("nan")
    sums = [int(x) for x in np.asarray(stats, dtype=np.int64).sum(axis=0)]
    return stat.score(sums)


def _counts(idx: np.ndarray, n: int) -> np.ndarray:
    """How often each example occurs in each resample row: (rows, n)."""
    rows = idx.shape[0]
    flat = (idx + (np.arange(rows) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=rows * n).reshape(rows, n)


def resample_scores(stats: np.ndarray, idx: np.ndarray, stat: CorpusStatistic) -> np.ndarray:
    """Corpus score of each bootstrap resample (rows of `idx`), as sacreBLEU computes it.

    sacreBLEU sums float32 copies of the rows per resample; the sums are integers far below
    2**24, so they are exact either way, but the formula then runs in float32 where they do,
    and so must ours to give the same numbers.
    """
    sums = (_counts(idx, len(stats)) @ np.asarray(stats, dtype=np.int64)).astype(np.float32)
    return stat.scores(sums)


def bootstrap_indices(n: int, n_samples: int, seed: int | None) -> np.ndarray:
    """sacreBLEU's resample indices: ``default_rng(seed).choice(n, (n_samples, n))``."""
    return np.random.default_rng(seed).choice(n, size=(n_samples, n), replace=True)


def estimate_ci(scores: np.ndarray) -> tuple[float, float]:
    """sacreBLEU's (mean, 95% half-width) of bootstrap scores: sorted, 1/40 in from each end."""
    s = np.sort(scores)
    lower = len(s) // 40
    return float(s.mean()), float(0.5 * (s[len(s) - lower - 1] - s[lower]))


def _p_value(sample_stats: np.ndarray, real_difference: float) -> float:
    # multeval's convention, as sacreBLEU: strictly greater, +1 on both sides.
    return (int(np.sum(sample_stats > real_difference)) + 1) / (len(sample_stats) + 1)


@dataclass(frozen=True)
class CorpusPaired:
    """A sacreBLEU paired test of candidate against baseline on one corpus metric."""

    test: str
    """paired_bs (paired bootstrap resampling) or paired_ar (approximate randomization)."""
    baseline: float
    candidate: float
    p_value: float
    n_samples: int
    seed: int | None
    baseline_mean: float | None
    baseline_ci: float | None
    """sacreBLEU's 95% half-width around baseline_mean (bootstrap)."""
    candidate_mean: float | None
    candidate_ci: float | None
    deltas: np.ndarray | None
    """candidate - baseline on each bootstrap resample (paired_bs), for the delta's CI."""


def paired_test(
    baseline: np.ndarray,
    candidate: np.ndarray,
    stat: CorpusStatistic,
    *,
    test: str = "paired_bs",
    n_samples: int | None = None,
    seed: int | None = SACREBLEU_SEED,
    n_ar_confidence: int = -1,
) -> CorpusPaired:
    """sacreBLEU's paired bootstrap (`paired_bs`) or approximate randomization (`paired_ar`).

    `baseline` / `candidate` are the (n, k) per-example statistics of the two systems on the
    same examples, in the same order. Same `seed` and `n_samples` → the same p-value, means and
    half-widths as ``sacrebleu.significance.PairedTest`` (whose seed 0 means "unseeded").
    """
    if test not in DEFAULT_SAMPLES:
        raise ValueError(f"unknown corpus test {test!r}; expected one of {tuple(DEFAULT_SAMPLES)}")
    bl = np.asarray(baseline, dtype=np.int64)
    sy = np.asarray(candidate, dtype=np.int64)
    if bl.shape != sy.shape:
        raise ValueError(f"baseline statistics {bl.shape} and candidate {sy.shape} differ in shape")
    n = len(bl)
    n_samples = n_samples or DEFAULT_SAMPLES[test]
    b_score, c_score = corpus_score(bl, stat), corpus_score(sy, stat)
    diff = abs(b_score - c_score)
    rng = np.random.default_rng(seed)
    if test == "paired_bs":
        idx = rng.choice(n, size=(n_samples, n), replace=True)
        scores_b, scores_c = resample_scores(bl, idx, stat), resample_scores(sy, idx, stat)
        sample_diffs = np.abs(scores_c - scores_b)
        p = _p_value(sample_diffs - sample_diffs.mean(), diff)
        b_mean, b_ci = estimate_ci(scores_b)
        c_mean, c_ci = estimate_ci(scores_c)
        deltas = scores_c.astype(np.float64) - scores_b.astype(np.float64)
        return CorpusPaired(test, b_score, c_score, p, n_samples, seed, b_mean, b_ci, c_mean, c_ci, deltas)
    # Approximate randomization: each trial swaps the two systems' rows on a random half.
    pos = rng.integers(2, size=(n_samples, n), dtype=bool)
    shuf_a = pos @ bl + ~pos @ sy
    shuf_b = ~pos @ bl + pos @ sy
    p = _p_value(np.abs(stat.scores(shuf_a) - stat.scores(shuf_b)), diff)
    ar_mean: float | None = None
    ar_ci: float | None = None
    if n_ar_confidence > 0:  # sacreBLEU's optional CI, drawn after the selectors
        idx = rng.choice(n, size=(n_ar_confidence, n), replace=True)
        ar_mean, ar_ci = estimate_ci(resample_scores(sy, idx, stat))
    return CorpusPaired(test, b_score, c_score, p, n_samples, seed, None, None, ar_mean, ar_ci, None)
