"""LLaMA-Factory's SFT generation metrics, reproduced so numbers line up side by side.

LLaMA-Factory's `ComputeSimilarity` (src/llamafactory/train/sft/metric.py) scores each
prediction/label pair with:

  rouge-1/2/l  jieba segmentation of both texts, joined by spaces, rouge-chinese's Rouge F;
               0 when either side has no token;
  bleu-4       nltk `sentence_bleu([list(label)], list(pred))` over characters (spaces
               included), smoothing method3;

each ×100 and rounded to 4 decimals per example before the mean. We call the same libraries
the same way. With several references the best is kept (LLaMA-Factory has exactly one label).
The preset `llamafactory` in a suite's `metrics:` expands to all four under their names.
"""

from __future__ import annotations

import functools
import warnings
from typing import Literal

from suites.metrics import tokenize as tk
from suites.metrics.base import METRICS, ExampleView, MetricResult, Scorer

_ROUGE_KEYS = ("rouge-1", "rouge-2", "rouge-l")

PRESETS: dict[str, list[dict[str, str]]] = {
    "llamafactory": [
        {"name": "llamafactory_rouge", "variant": "rouge-1", "as": "rouge-1"},
        {"name": "llamafactory_rouge", "variant": "rouge-2", "as": "rouge-2"},
        {"name": "llamafactory_rouge", "variant": "rouge-l", "as": "rouge-l"},
        {"name": "llamafactory_bleu4", "as": "bleu-4"},
    ]
}
"""Preset name → the metric entries it stands for in a suite's `metrics:` list."""


@functools.lru_cache(maxsize=4096)  # rouge-1/2/l score the same pair: segment and score once
def lf_rouge(pred: str, label: str) -> dict[str, float]:
    """LLaMA-Factory's three ROUGE F values (×100, rounded to 4 decimals) for one pair."""
    from rouge_chinese import Rouge

    jieba = tk.jieba_module()
    hypothesis = list(jieba.cut(pred))
    reference = list(jieba.cut(label))
    if len(" ".join(hypothesis).split()) == 0 or len(" ".join(reference).split()) == 0:
        return dict.fromkeys(_ROUGE_KEYS, 0.0)
    scores = Rouge().get_scores(" ".join(hypothesis), " ".join(reference))[0]
    return {k: round(v["f"] * 100, 4) for k, v in scores.items()}


@functools.cache
def _smoothing():
    from nltk.translate.bleu_score import SmoothingFunction

    return SmoothingFunction().method3


def lf_bleu4(pred: str, label: str) -> float:
    """LLaMA-Factory's BLEU-4 (×100, rounded to 4 decimals) for one pair."""
    from nltk.translate.bleu_score import sentence_bleu

    with warnings.catch_warnings():  # nltk warns on 0 n-gram overlaps; the value is still right
        warnings.simplefilter("ignore")
        value = sentence_bleu([list(label)], list(pred), smoothing_function=_smoothing())
    return round(value * 100, 4)


@METRICS.register("llamafactory_rouge", higher_is_better=True, aggregation="mean", binary=False)
def llamafactory_rouge(*, variant: Literal["rouge-1", "rouge-2", "rouge-l"] = "rouge-l") -> Scorer:
    """LLaMA-Factory's ROUGE (jieba + rouge-chinese, ×100, 4 decimals), best over references."""

    def score(prediction: str, example: ExampleView) -> MetricResult:
        if not example.references:
            return MetricResult(error="example has no reference answer")
        value = max(lf_rouge(prediction, ref)[variant] for ref in example.references)
        return MetricResult(value=value, detail={"tokenizer": "jieba"})

    return score


@METRICS.register("llamafactory_bleu4", higher_is_better=True, aggregation="mean", binary=False)
def llamafactory_bleu4() -> Scorer:
    """LLaMA-Factory's BLEU-4 (nltk over characters, method3, ×100, 4 decimals)."""

    def score(prediction: str, example: ExampleView) -> MetricResult:
        if not example.references:
            return MetricResult(error="example has no reference answer")
        value = max(lf_bleu4(prediction, ref) for ref in example.references)
        return MetricResult(value=value, detail={"tokenizer": "char"})

    return score
