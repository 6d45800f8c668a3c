"""Classification over a fixed label set: map the output to a label, compare.

accuracy and macro_f1 score each example the same way (1 if the mapped label is the
reference); they differ only in aggregation, which reads detail["pred"] / detail["label"].

`label_mode` says how an output maps to a label (stored in the metric spec):
  extract     (default) the label the output states: the whole output modulo case and trailing
              punctuation, else the earliest whole-word label in it ("The answer is positive.")
  normalized  strip + lower-case, then the output must equal a label
  strict      the output must equal a label exactly
An output that maps to no label is wrong in accuracy; in macro-F1 it is its own class, which
costs the gold label recall but is not averaged (sklearn's f1_score with explicit labels=).
"""

from __future__ import annotations

import re
import string
from typing import Literal

from harness.errors import UserError
from suites.metrics.base import METRICS, ExampleView, MetricResult, Scorer


class LabelSet:
    """A fixed label set that can recognise labels in references and in free-form output."""

    def __init__(self, labels: list[str], *, ignore_case: bool = True) -> None:
        if not labels:
            raise UserError("labels must list at least one label", field="labels")
        self.labels = list(labels)
        self.ignore_case = ignore_case
        self._canonical: dict[str, str] = {}
        for label in labels:
            key = self._key(label)
            if not key:
                raise UserError("labels must not contain an empty label", field="labels")
            if key in self._canonical:
                raise UserError(f"label {label!r} is listed twice", field="labels")
            self._canonical[key] = label
        # Whole-word match via lookarounds rather than \b, so labels that start or end with
        # a non-word character ("n/a", "+1") still match at their edges.
        self._patterns = {key: re.compile(rf"(?<!\w){re.escape(key)}(?!\w)") for key in self._canonical}

    def _fold(self, text: str) -> str:
        return text.casefold() if self.ignore_case else text

    def _key(self, text: str) -> str:
        return self._fold(text.strip())

    def lookup(self, text: str) -> str | None:
        """The label `text` names exactly (modulo case / surrounding space), else None."""
        return self._canonical.get(self._key(text))

    def extract(self, output: str) -> str | None:
        """The label the model output states, in its canonical spelling, or None."""
        text = self._fold(output)
        # The common, unambiguous case: the output is just the label ("Positive.").
        bare = text.strip().rstrip(string.punctuation).strip()
        if bare in self._canonical:
            return self._canonical[bare]
        best: tuple[int, int, str] | None = None
        for key, pattern in self._patterns.items():
            m = pattern.search(text)
            if m is None:
                continue
            # Earliest occurrence wins; at the same position the longer label wins, so
            # "not entailment" beats the "entailment" inside it.
            rank = (m.start(), -len(key), key)
            if best is None or rank < best:
                best = rank
        return self._canonical[best[2]] if best else None


LabelMode = Literal["extract", "normalized", "strict"]


def _label_scorer(labels: list[str], ignore_case: bool, label_mode: str = "extract") -> Scorer:
    label_set = LabelSet(labels, ignore_case=ignore_case)
    exact = {label: label for label in labels}
    folded = {label.strip().lower(): label for label in labels}

    def mapped(output: str) -> str | None:
        if label_mode == "strict":
            return exact.get(output)
        if label_mode == "normalized":
            return folded.get(output.strip().lower())
        return label_set.extract(output)

    def score(prediction: str, example: ExampleView) -> MetricResult:
        if not example.references:
            return MetricResult(error="example has no reference label")
        ref = example.references[0]
        label = label_set.lookup(ref)
        if label is None:
            # A gold label outside the label set is a data/config mismatch, not a model error.
            return MetricResult(error=f"reference label {ref!r} is not one of labels {labels!r}")
        pred = mapped(prediction)
        detail: dict[str, object] = {"pred": pred, "label": label}
        if pred is None:
            detail["reason"] = (
                "no label found in output" if label_mode == "extract" else "output is not a label"
            )
        return MetricResult(value=float(pred == label), detail=detail)

    return score


@METRICS.register("accuracy", higher_is_better=True, aggregation="mean", binary=True)
def accuracy(*, labels: list[str], ignore_case: bool = True, label_mode: LabelMode = "extract") -> Scorer:
    """Fraction of examples whose label mapped from the output equals the reference label."""
    return _label_scorer(labels, ignore_case, label_mode)


# version 2: every declared label is averaged (0 where absent), as sklearn f1_score(labels=...)
@METRICS.register("macro_f1", higher_is_better=True, aggregation="macro_f1", binary=True, version=2)
def macro_f1(*, labels: list[str], ignore_case: bool = True, label_mode: LabelMode = "extract") -> Scorer:
    """Macro-averaged F1 over labels; the output is mapped to a label as for accuracy."""
    return _label_scorer(labels, ignore_case, label_mode)
