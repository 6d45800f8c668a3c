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

from collections.abc import Callable
from typing import Any, Literal

from sacrebleu.metrics import BLEU

from harness import corpus
from harness.errors import UserError
from suites.metrics import tokenize as tk
from suites.metrics.base import METRICS, ExampleView, MetricResult, Scorer
from suites.metrics.text import _SACREBLEU_NAME, NO_REFERENCES, _segmented, simplifier
from suites.metrics.tokenize import Tokenize

SmoothMethod = Literal["exp", "floor", "add-k", "none"]


def _sacrebleu(aggregation: str, args: dict[str, Any]) -> Any:
    try:
        return corpus.sacrebleu_metric(aggregation, args)
    except Exception as e:  # e.g. ja-mecab without its extra installed
        reason = " ".join(str(e).split())
        raise UserError(f"sacrebleu cannot build this metric: {reason}", field="tokenize") from None


def _corpus_scorer(
    aggregation: str,
    args: dict[str, Any],
    sentence: Any,
    prepare: Callable[[str, list[str]], Any] | None = None,
) -> Scorer:
    """`prepare(text, references)` → (text for sacreBLEU, the sacreBLEU metric that tokenizes it)."""
    metric = _sacrebleu(aggregation, args)
    sigs: dict[int, str] = {}

    def score(prediction: str, example: ExampleView) -> MetricResult:
        refs = list(example.references)
        if not refs:
            return MetricResult(error=NO_REFERENCES)
        extractor = metric
        if prepare is not None:  # tokenize / to_simplified: text prepared, tokenizer picked per example
            extractor = prepare("", refs)[1]
            prediction, refs = prepare(prediction, refs)[0], [prepare(r, refs)[0] for r in refs]
        # sacreBLEU's own segment statistics (what its corpus_score and paired tests sum).
        stats = [int(x) for x in extractor._extract_corpus_statistics([prediction], [[r] for r in refs])[0]]
        if len(refs) not in sigs:
            sigs[len(refs)] = corpus.signature(metric, len(refs))
        value = float(sentence._compute_score_from_stats(stats).score)
        detail = {"stats": stats, "nrefs": len(refs), "signature": sigs[len(refs)]}
        return MetricResult(value=value, detail=detail)

    return score


# version 2: tokenize defaults to auto (sacreBLEU zh for Chinese references), as bleu
@METRICS.register("corpus_bleu", higher_is_better=True, aggregation="corpus_bleu", binary=False, version=2)
def corpus_bleu(
    *,
    tokenize: str = "auto",
    lowercase: bool = False,
    smooth_method: SmoothMethod = "exp",
    smooth_value: float | None = None,
    max_ngram_order: int = 4,
    to_simplified: bool = False,
) -> Scorer:
    """Corpus BLEU (sacrebleu corpus_bleu, 0-100) from per-example n-gram statistics.

    `tokenize` as for `bleu`: auto (sacreBLEU `zh` for an example with CJK references, else `13a`),
    default, char, char_raw, jieba, or any sacreBLEU tokenizer by name."""
    if tokenize not in tk.MODES and tokenize not in BLEU.TOKENIZERS:
        known = ", ".join([*tk.MODES, *(t for t in BLEU.TOKENIZERS if t not in tk.MODES)])
        raise UserError(f"unknown tokenizer '{tokenize}'; known: {known}", field="tokenize")
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
        tokenize=corpus.OUR_TOKENIZERS.get(tokenize, tokenize),
        lowercase=lowercase,
        max_ngram_order=max_ngram_order,
        effective_order=True,
    )
    if tokenize not in tk.MODES and not to_simplified:
        return _corpus_scorer("corpus_bleu", args, sentence)
    t2s = simplifier(to_simplified)
    by_name: dict[str, Any] = {}

    def prepare(text: str, refs: list[str]) -> tuple[str, Any]:
        mode = tk.resolve(tokenize, refs) if tokenize in tk.MODES else tokenize
        name = _SACREBLEU_NAME.get(mode, mode)
        if name not in by_name:
            by_name[name] = _sacrebleu("corpus_bleu", {**args, "tokenize": name})
        return (_segmented(t2s(text), mode) if mode in tk.MODES else t2s(text)), by_name[name]

    return _corpus_scorer("corpus_bleu", args, sentence, prepare)


# version 2: tokenize auto segments Chinese word n-grams (chrF++, word_order > 0)
@METRICS.register("corpus_chrf", higher_is_better=True, aggregation="corpus_chrf", binary=False, version=2)
def corpus_chrf(
    *,
    char_order: int = 6,
    word_order: int = 0,
    beta: int = 2,
    lowercase: bool = False,
    whitespace: bool = False,
    eps_smoothing: bool = False,
    tokenize: Tokenize = "auto",
    to_simplified: bool = False,
) -> Scorer:
    """Corpus chrF (sacrebleu corpus_chrf, 0-100); word_order=2 gives chrF++.

    `tokenize` segments words for chrF++'s word n-grams, as for `chrf` (character n-grams ignore
    white space, so with word_order 0 it changes nothing)."""
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
    if word_order == 0 and not to_simplified:
        return _corpus_scorer("corpus_chrf", args, metric)
    t2s = simplifier(to_simplified)

    def prepare(text: str, refs: list[str]) -> tuple[str, Any]:
        mode = tk.resolve(tokenize, refs)
        text = t2s(text)
        return (text if mode == "default" else " ".join(tk.tokens(text, mode, keep_punctuation=True))), metric

    return _corpus_scorer("corpus_chrf", args, metric, prepare)
