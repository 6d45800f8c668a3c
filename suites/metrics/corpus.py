"""Corpus BLEU and chrF (sacreBLEU ``corpus_score``), stored as per-example sufficient statistics.

Each example's score row keeps sacreBLEU's segment statistics in ``detail["stats"]`` with the
example's reference count and the sacreBLEU signature; the corpus number is the formula on
their column sums (harness.corpus), recomputed from rows whenever it is shown, compared or
gated. References are the example's own: an example with fewer references than others is what
sacreBLEU gets when the missing ones are padded with ``None`` (never ``""``, which would count
as an empty reference and change BLEU's closest-reference length).

``value`` is the sentence-level score from the same statistics (BLEU with effective order, as
``sacrebleu.sentence_bleu``), used for wins/losses and the most-regressed examples only.
"""

from __future__ import annotations

from typing import Any, Literal

from sacrebleu.metrics import BLEU

from harness import corpus
from harness.errors import UserError
from suites.metrics.base import METRICS, ExampleView, MetricResult, Scorer
from suites.metrics.text import NO_REFERENCES

SmoothMethod = Literal["exp", "floor", "add-k", "none"]


def _sacrebleu(aggregation: str, args: dict[str, Any]) -> Any:
    try:
        return corpus.sacrebleu_metric(aggregation, args)
    except Exception as e:  # e.g. ja-mecab without its extra installed
        reason = " ".join(str(e).split())
        raise UserError(f"sacrebleu cannot build this metric: {reason}", field="tokenize") from None


def _corpus_scorer(aggregation: str, args: dict[str, Any], sentence: Any) -> Scorer:
    metric = _sacrebleu(aggregation, args)
    sigs: dict[int, str] = {}

    def score(prediction: str, example: ExampleView) -> MetricResult:
        refs = list(example.references)
        if not refs:
            return MetricResult(error=NO_REFERENCES)
        # sacreBLEU's own segment statistics (what its corpus_score and paired tests sum).
        stats = [int(x) for x in metric._extract_corpus_statistics([prediction], [[r] for r in refs])[0]]
        if len(refs) not in sigs:
            sigs[len(refs)] = corpus.signature(metric, len(refs))
        value = float(sentence._compute_score_from_stats(stats).score)
        detail = {"stats": stats, "nrefs": len(refs), "signature": sigs[len(refs)]}
        return MetricResult(value=value, detail=detail)

    return score


@METRICS.register("corpus_bleu", higher_is_better=True, aggregation="corpus_bleu", binary=False)
def corpus_bleu(
    *,
    tokenize: str = "13a",
    lowercase: bool = False,
    smooth_method: SmoothMethod = "exp",
    smooth_value: float | None = None,
    max_ngram_order: int = 4,
) -> Scorer:
    """Corpus BLEU (sacrebleu corpus_bleu, 0-100) from per-example n-gram statistics."""
    if tokenize not in BLEU.TOKENIZERS:
        raise UserError(
            f"unknown tokenizer '{tokenize}'; known: {', '.join(BLEU.TOKENIZERS)}", field="tokenize"
        )
    if not 1 <= max_ngram_order <= 9:
        raise UserError("max_ngram_order must be between 1 and 9", field="max_ngram_order")
    args = {
        "tokenize": tokenize,
        "lowercase": lowercase,
        "smooth_method": smooth_method,
        "smooth_value": smooth_value,
        "max_ngram_order": max_ngram_order,
    }
    sentence = BLEU(
        tokenize=tokenize, lowercase=lowercase, max_ngram_order=max_ngram_order, effective_order=True
    )
    return _corpus_scorer("corpus_bleu", args, sentence)


@METRICS.register("corpus_chrf", higher_is_better=True, aggregation="corpus_chrf", binary=False)
def corpus_chrf(
    *,
    char_order: int = 6,
    word_order: int = 0,
    beta: int = 2,
    lowercase: bool = False,
    whitespace: bool = False,
    eps_smoothing: bool = False,
) -> Scorer:
    """Corpus chrF (sacrebleu corpus_chrf, 0-100); word_order=2 gives chrF++."""
    if char_order < 0 or word_order < 0 or char_order + word_order == 0:
        raise UserError("char_order and word_order must be >= 0 and not both 0", field="char_order")
    if beta < 1:
        raise UserError("beta must be >= 1", field="beta")
    args = {
        "char_order": char_order,
        "word_order": word_order,
        "beta": beta,
        "lowercase": lowercase,
        "whitespace": whitespace,
        "eps_smoothing": eps_smoothing,
    }
    # A segment's chrF is the corpus formula on its own statistics (sacrebleu.sentence_chrf).
    metric = corpus.sacrebleu_metric("corpus_chrf", args)
    return _corpus_scorer("corpus_chrf", args, metric)
