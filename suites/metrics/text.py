"""Reference-based text metrics: exact match, SQuAD token F1, ROUGE, BLEU, chrF, contains.

Each metric compares the prediction with every reference and keeps the best score, the usual
convention when several answers are acceptable. An example without references cannot be
scored by these metrics, so it yields an error result rather than a misleading 0.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable

from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU, CHRF

from harness.errors import UserError
from suites.metrics.base import METRICS, ExampleView, MetricResult, Scorer

NO_REFERENCES = "example has no reference answer"

_PUNCT_TABLE = str.maketrans("", "", string.punctuation)
# Case-insensitive so that ignore_articles also drops a sentence-initial "The" when case is
# kept; an article is noise for matching whatever its capitalisation.
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.IGNORECASE)


def normalize(
    text: str,
    *,
    ignore_case: bool = True,
    ignore_punctuation: bool = True,
    ignore_articles: bool = False,
    collapse_whitespace: bool = True,
) -> str:
    """Apply the exact_match normalisation steps, in SQuAD order (case, punct, articles, ws)."""
    if ignore_case:
        text = text.lower()
    if ignore_punctuation:
        text = text.translate(_PUNCT_TABLE)
    if ignore_articles:
        text = _ARTICLES.sub(" ", text)
    if collapse_whitespace:
        text = " ".join(text.split())
    return text


def squad_normalize(text: str) -> str:
    """SQuAD v1.1 normalize_answer: lower, drop punctuation and articles, fix whitespace."""
    return normalize(text, ignore_case=True, ignore_punctuation=True, ignore_articles=True)


def squad_f1(prediction: str, reference: str) -> float:
    """SQuAD v1.1 token F1 (two empty answers score 0, as in the v1.1 script)."""
    pred_tokens = squad_normalize(prediction).split()
    ref_tokens = squad_normalize(reference).split()
    same = sum((Counter(pred_tokens) & Counter(ref_tokens)).values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


@METRICS.register("exact_match", higher_is_better=True, aggregation="mean", binary=True)
def exact_match(
    *,
    ignore_case: bool = True,
    ignore_punctuation: bool = True,
    ignore_articles: bool = False,
    collapse_whitespace: bool = True,
) -> Scorer:
    """1 if the normalised output equals a normalised reference (max over references)."""

    def norm(text: str) -> str:
        return normalize(
            text,
            ignore_case=ignore_case,
            ignore_punctuation=ignore_punctuation,
            ignore_articles=ignore_articles,
            collapse_whitespace=collapse_whitespace,
        )

    def score(prediction: str, example: ExampleView) -> MetricResult:
        if not example.references:
            return MetricResult(error=NO_REFERENCES)
        pred = norm(prediction)
        hit = any(pred == norm(ref) for ref in example.references)
        return MetricResult(value=float(hit), detail={"normalized_prediction": pred})

    return score


@METRICS.register("token_f1", higher_is_better=True, aggregation="mean", binary=False)
def token_f1() -> Scorer:
    """SQuAD v1.1 token-overlap F1 between output and the best-matching reference."""

    def score(prediction: str, example: ExampleView) -> MetricResult:
        if not example.references:
            return MetricResult(error=NO_REFERENCES)
        value = max(squad_f1(prediction, ref) for ref in example.references)
        return MetricResult(value=value, detail={"normalized_prediction": squad_normalize(prediction)})

    return score


def _rouge_factory(rouge_type: str) -> Callable[..., Scorer]:
    def factory(*, use_stemmer: bool = False) -> Scorer:
        # Built once per metric instance: the stemmer and tokenizer setup is not free.
        scorer = rouge_scorer.RougeScorer([rouge_type], use_stemmer=use_stemmer)

        def score(prediction: str, example: ExampleView) -> MetricResult:
            if not example.references:
                return MetricResult(error=NO_REFERENCES)
            # score_multi keeps the reference with the highest F-measure.
            s = scorer.score_multi(example.references, prediction)[rouge_type]
            return MetricResult(
                value=float(s.fmeasure),
                detail={"precision": float(s.precision), "recall": float(s.recall)},
            )

        return score

    label = "ROUGE-" + rouge_type.removeprefix("rouge")
    factory.__name__ = factory.__qualname__ = rouge_type
    factory.__doc__ = f"{label} F-measure (rouge_score), best over references."
    return factory


for _rouge_type in ("rouge1", "rouge2", "rougeL"):
    METRICS.register(_rouge_type, higher_is_better=True, aggregation="mean", binary=False)(
        _rouge_factory(_rouge_type)
    )


@METRICS.register("bleu", higher_is_better=True, aggregation="mean", binary=False)
def bleu(*, tokenize: str = "13a", lowercase: bool = False) -> Scorer:
    """Sentence BLEU (sacrebleu, 0-100, effective order) against all references."""
    if tokenize not in BLEU.TOKENIZERS:
        raise UserError(
            f"unknown sacrebleu tokenizer '{tokenize}'; known: {', '.join(BLEU.TOKENIZERS)}",
            field="tokenize",
        )
    try:
        # Same settings as sacrebleu.sentence_bleu, built once instead of per example.
        metric = BLEU(tokenize=tokenize, lowercase=lowercase, effective_order=True)
    except Exception as e:  # e.g. ja-mecab without extras, spm model download failing
        reason = " ".join(str(e).split())  # sacrebleu's messages span several lines
        raise UserError(
            f"sacrebleu tokenizer '{tokenize}' is unavailable: {reason}", field="tokenize"
        ) from None

    def score(prediction: str, example: ExampleView) -> MetricResult:
        if not example.references:
            return MetricResult(error=NO_REFERENCES)
        s = metric.sentence_score(prediction, list(example.references))
        return MetricResult(value=float(s.score), detail={"tokenize": tokenize})

    return score


@METRICS.register("chrf", higher_is_better=True, aggregation="mean", binary=False)
def chrf(*, char_order: int = 6, word_order: int = 0, beta: int = 2) -> Scorer:
    """Sentence chrF (sacrebleu, 0-100); word_order=2 gives chrF++."""
    # sacrebleu accepts these silently and returns meaningless scores, so reject them here.
    if char_order < 0:
        raise UserError("char_order must be >= 0", field="char_order")
    if word_order < 0:
        raise UserError("word_order must be >= 0", field="word_order")
    if char_order + word_order == 0:
        raise UserError("char_order and word_order cannot both be 0", field="char_order")
    if beta < 1:
        raise UserError("beta must be >= 1", field="beta")
    # Same settings as sacrebleu.sentence_chrf.
    metric = CHRF(char_order=char_order, word_order=word_order, beta=beta)

    def score(prediction: str, example: ExampleView) -> MetricResult:
        if not example.references:
            return MetricResult(error=NO_REFERENCES)
        return MetricResult(value=float(metric.sentence_score(prediction, list(example.references)).score))

    return score


@METRICS.register("contains", higher_is_better=True, aggregation="mean", binary=True)
def contains(*, ignore_case: bool = True) -> Scorer:
    """1 if any (non-empty) reference occurs verbatim in the output."""

    def fold(text: str) -> str:
        return text.casefold() if ignore_case else text

    def score(prediction: str, example: ExampleView) -> MetricResult:
        # An empty reference would be contained in every output, so it cannot count.
        refs = [r for r in example.references if r.strip()]
        if not refs:
            return MetricResult(error=NO_REFERENCES)
        pred = fold(prediction)
        matched = next((r for r in refs if fold(r) in pred), None)
        return MetricResult(value=float(matched is not None), detail={"matched": matched})

    return score
