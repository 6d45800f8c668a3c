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
from typing import TYPE_CHECKING, Literal

from sacrebleu.metrics import BLEU, CHRF

from harness.errors import UserError
from suites.metrics import tokenize as tk
from suites.metrics.base import METRICS, ExampleView, MetricResult, Scorer
from suites.metrics.tokenize import Tokenize

if TYPE_CHECKING:
    from rouge_score import rouge_scorer

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


def _text_normalizer(
    mode: str,
    *,
    ignore_case: bool = True,
    ignore_punctuation: bool = True,
    ignore_articles: bool = False,
    collapse_whitespace: bool = True,
    to_simplified: bool = False,
) -> Callable[[str], str]:
    """SQuAD's ASCII steps under `default`, none under `char_raw`, the Unicode ones otherwise."""
    if mode == "char_raw":
        return lambda text: text
    if mode == "default":

        def squad(text: str) -> str:
            if to_simplified:
                text = tk.to_simplified(text)
            return normalize(
                text,
                ignore_case=ignore_case,
                ignore_punctuation=ignore_punctuation,
                ignore_articles=ignore_articles,
                collapse_whitespace=collapse_whitespace,
            )

        return squad
    return lambda text: tk.unicode_normalize(
        text,
        ignore_case=ignore_case,
        ignore_punctuation=ignore_punctuation,
        ignore_articles=ignore_articles,
        simplified=to_simplified,
    )


Normalization = Literal["options", "raw", "strip", "squad"]
# Named conventions compare strings exactly as the convention says, whatever the script.
_NAMED_NORMALIZATIONS: dict[str, Callable[[str], str]] = {
    "raw": lambda text: text,
    "strip": str.strip,
    "squad": squad_normalize,
}
_EM_FLAG_DEFAULTS = {
    "ignore_case": True,
    "ignore_punctuation": True,
    "ignore_articles": False,
    "collapse_whitespace": True,
    "tokenize": "auto",
    "to_simplified": False,
}


@METRICS.register("exact_match", higher_is_better=True, aggregation="mean", binary=True)
def exact_match(
    *,
    normalization: Normalization = "options",
    ignore_case: bool = True,
    ignore_punctuation: bool = True,
    ignore_articles: bool = False,
    collapse_whitespace: bool = True,
    tokenize: Tokenize = "auto",
    to_simplified: bool = False,
) -> Scorer:
    """1 if the normalised output equals a normalised reference (max over references)."""
    # normalization: `options` (default: the flags), `raw` (no change), `strip` (ends only) or
    # `squad` (official SQuAD v1.1 normalize_answer); a named one takes no other flag.
    if normalization != "options":
        given = {
            "ignore_case": ignore_case,
            "ignore_punctuation": ignore_punctuation,
            "ignore_articles": ignore_articles,
            "collapse_whitespace": collapse_whitespace,
            "tokenize": tokenize,
            "to_simplified": to_simplified,
        }
        clash = next((k for k, v in given.items() if v != _EM_FLAG_DEFAULTS[k]), None)
        if clash is not None:
            raise UserError(
                f"normalization '{normalization}' is a fixed convention; drop '{clash}' or use "
                "normalization: options",
                field=clash,
            )
        fixed = _NAMED_NORMALIZATIONS[normalization]

        def score_named(prediction: str, example: ExampleView) -> MetricResult:
            if not example.references:
                return MetricResult(error=NO_REFERENCES)
            pred = fixed(prediction)
            hit = any(pred == fixed(ref) for ref in example.references)
            return MetricResult(
                value=float(hit), detail={"normalized_prediction": pred, "normalization": normalization}
            )

        return score_named
    opts = {
        "ignore_case": ignore_case,
        "ignore_punctuation": ignore_punctuation,
        "ignore_articles": ignore_articles,
        "collapse_whitespace": collapse_whitespace,
        "to_simplified": to_simplified,
    }
    norms = {mode: _text_normalizer(mode, **opts) for mode in ("default", "char", "char_raw", "jieba")}

    def score(prediction: str, example: ExampleView) -> MetricResult:
        if not example.references:
            return MetricResult(error=NO_REFERENCES)
        mode = tk.resolve(tokenize, example.references)
        norm = norms[mode]
        pred = norm(prediction)
        if mode == "default":
            hit = any(pred == norm(ref) for ref in example.references)
        else:  # token sequences: spaces between CJK characters carry no meaning
            keep = not ignore_punctuation
            toks = tk.tokens(pred, mode, keep_punctuation=keep)
            hit = any(toks == tk.tokens(norm(ref), mode, keep_punctuation=keep) for ref in example.references)
        return MetricResult(value=float(hit), detail={"normalized_prediction": pred, "tokenizer": mode})

    return score


def _f1(pred_tokens: list[str], ref_tokens: list[str]) -> float:
    same = sum((Counter(pred_tokens) & Counter(ref_tokens)).values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


@METRICS.register("token_f1", higher_is_better=True, aggregation="mean", binary=False)
def token_f1(*, tokenize: Tokenize = "auto", to_simplified: bool = False) -> Scorer:
    """SQuAD v1.1 token-overlap F1 between output and the best-matching reference."""

    def norm(text: str, mode: str) -> str:
        if mode == "char_raw":
            return text
        if mode == "default":
            return squad_normalize(tk.to_simplified(text) if to_simplified else text)
        return tk.unicode_normalize(text, ignore_articles=True, simplified=to_simplified)

    def toks(text: str, mode: str) -> list[str]:
        return text.split() if mode == "default" else tk.tokens(text, mode)

    def score(prediction: str, example: ExampleView) -> MetricResult:
        if not example.references:
            return MetricResult(error=NO_REFERENCES)
        mode = tk.resolve(tokenize, example.references)
        pred = norm(prediction, mode)
        pred_toks = toks(pred, mode)
        value = max(_f1(pred_toks, toks(norm(ref, mode), mode)) for ref in example.references)
        return MetricResult(value=value, detail={"normalized_prediction": pred, "tokenizer": mode})

    return score


def simplifier(to_simplified: bool) -> Callable[[str], str]:
    """Traditional → simplified Chinese (OpenCC t2s) on both sides of a metric, or nothing."""
    return tk.to_simplified if to_simplified else (lambda text: text)


def _rouge_factory(rouge_type: str) -> Callable[..., Scorer]:
    def factory(
        *, use_stemmer: bool = False, tokenize: Tokenize = "auto", to_simplified: bool = False
    ) -> Scorer:
        t2s = simplifier(to_simplified)
        # Built once per metric instance (and per tokenizer, on first use): the stemmer and
        # tokenizer setup is not free, and jieba must not load for English-only suites.
        scorers: dict[str, rouge_scorer.RougeScorer] = {}

        def scorer_for(mode: str) -> rouge_scorer.RougeScorer:
            # imported here: rouge_score pulls in nltk and scipy.stats (~1.6 s), which every
            # command that loads the suites package would otherwise pay
            from rouge_score import rouge_scorer

            if mode not in scorers:
                tokenizer = None if mode == "default" else tk.RougeTokenizer(mode, use_stemmer)
                scorers[mode] = rouge_scorer.RougeScorer(
                    [rouge_type], use_stemmer=use_stemmer, tokenizer=tokenizer
                )
            return scorers[mode]

        def score(prediction: str, example: ExampleView) -> MetricResult:
            if not example.references:
                return MetricResult(error=NO_REFERENCES)
            mode = tk.resolve(tokenize, example.references)
            # score_multi keeps the reference with the highest F-measure.
            refs = [t2s(r) for r in example.references]
            s = scorer_for(mode).score_multi(refs, t2s(prediction))[rouge_type]
            return MetricResult(
                value=float(s.fmeasure),
                detail={"precision": float(s.precision), "recall": float(s.recall), "tokenizer": mode},
            )

        return score

    label = "ROUGE-" + rouge_type.removeprefix("rouge")
    factory.__name__ = factory.__qualname__ = rouge_type
    factory.__doc__ = f"{label} F-measure (rouge_score), best over references."
    return factory


# rougeLsum: summary-level LCS over sentences split on newlines, as rouge-score computes it.
for _rouge_type in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
    METRICS.register(_rouge_type, higher_is_better=True, aggregation="mean", binary=False)(
        _rouge_factory(_rouge_type)
    )


# Our tokenizer names → sacrebleu's (`char` is sacrebleu `zh`: CJK characters split, the rest
# 13a). `jieba` text is segmented first and then left alone (`none`).
_SACREBLEU_NAME = {"default": "13a", "char": "zh", "char_raw": "none", "jieba": "none"}


def _sacrebleu_bleu(tokenize: str, lowercase: bool) -> BLEU:
    try:
        return BLEU(tokenize=tokenize, lowercase=lowercase, effective_order=True)
    except Exception as e:  # e.g. ja-mecab without extras, spm model download failing
        reason = " ".join(str(e).split())  # sacrebleu's messages span several lines
        raise UserError(
            f"sacrebleu tokenizer '{tokenize}' is unavailable: {reason}", field="tokenize"
        ) from None


def _segmented(text: str, mode: str) -> str:
    """`jieba` words / `char_raw` characters joined by spaces (marks kept: BLEU and chrF count them)."""
    if mode == "jieba":
        return " ".join(tk.jieba_tokens(text, keep_punctuation=True))
    return " ".join(tk.raw_char_tokens(text)) if mode == "char_raw" else text


@METRICS.register("bleu", higher_is_better=True, aggregation="mean", binary=False)
def bleu(*, tokenize: str = "auto", lowercase: bool = False, to_simplified: bool = False) -> Scorer:
    """Sentence BLEU (sacrebleu, 0-100, effective order) against all references."""
    t2s = simplifier(to_simplified)
    if tokenize not in tk.MODES and tokenize not in BLEU.TOKENIZERS:
        known = ", ".join([*tk.MODES, *(t for t in BLEU.TOKENIZERS if t not in tk.MODES)])
        raise UserError(f"unknown tokenizer '{tokenize}'; known: {known}", field="tokenize")
    metrics: dict[str, BLEU] = {}

    def metric_for(name: str) -> BLEU:
        # Same settings as sacrebleu.sentence_bleu, built once instead of per example.
        if name not in metrics:
            metrics[name] = _sacrebleu_bleu(name, lowercase)
        return metrics[name]

    if tokenize not in tk.MODES:  # a sacrebleu tokenizer by name: fail on a bad one now
        metric_for(tokenize)
    elif tokenize != "auto":
        metric_for(_SACREBLEU_NAME[tokenize])

    def score(prediction: str, example: ExampleView) -> MetricResult:
        if not example.references:
            return MetricResult(error=NO_REFERENCES)
        if tokenize in tk.MODES:
            mode = tk.resolve(tokenize, example.references)
            name = _SACREBLEU_NAME[mode]
        else:
            mode = name = tokenize
        refs = [_segmented(t2s(r), mode) for r in example.references]
        s = metric_for(name).sentence_score(_segmented(t2s(prediction), mode), refs)
        return MetricResult(value=float(s.score), detail={"tokenize": name, "tokenizer": mode})

    return score


@METRICS.register("chrf", higher_is_better=True, aggregation="mean", binary=False)
def chrf(
    *,
    char_order: int = 6,
    word_order: int = 0,
    beta: int = 2,
    tokenize: Tokenize = "auto",
    to_simplified: bool = False,
) -> Scorer:
    """Sentence chrF (sacrebleu, 0-100); word_order=2 gives chrF++."""
    t2s = simplifier(to_simplified)
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

    def segment(text: str, mode: str) -> str:
        # Character n-grams ignore whitespace, so segmenting only changes chrF++'s word n-grams.
        if mode == "default":
            return text
        return " ".join(tk.tokens(text, mode, keep_punctuation=True))

    def score(prediction: str, example: ExampleView) -> MetricResult:
        if not example.references:
            return MetricResult(error=NO_REFERENCES)
        mode = tk.resolve(tokenize, example.references)
        refs = [segment(t2s(r), mode) for r in example.references]
        value = metric.sentence_score(segment(t2s(prediction), mode), refs).score
        return MetricResult(value=float(value), detail={"tokenizer": mode})

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
