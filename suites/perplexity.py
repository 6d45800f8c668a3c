r"""`perplexity` suites: token-level NLL of held-out text, strided windows for long texts.

Token perplexity cannot be compared between models with different tokenizers (a base and a
model with an extended vocabulary, or across languages), so every example also gets the
tokenizer-free measures lm-evaluation-harness defines for `loglikelihood_rolling` tasks:

    word_perplexity = exp(sum(nll) / sum(words))   words = len(re.split(r"\s+", text))
    byte_perplexity = exp(sum(nll) / sum(bytes))   bytes = len(text.encode("utf-8"))
    bits_per_byte   = sum(nll) / sum(bytes) / ln 2

Each is stored per example with its count as the weight, so the run aggregate is exactly
lm-eval's corpus-level number. lm-eval's word count is whitespace-based: a Chinese paragraph
without spaces is one "word", which is why bits_per_byte is the number to compare there.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from harness.errors import UserError
from harness.store import GenerationRow, ScoreRow
from harness.textfile import read_utf8
from suites.base import (
    SUITE_KINDS,
    BoundMetric,
    Example,
    Request,
    SuiteConfig,
    SuiteKind,
    example_ids,
    read_jsonl,
)


class PerplexityConfig(SuiteConfig):
    """Held-out text scored by the model's own likelihood."""

    data: str
    """JSONL (one text per record) or .txt, relative to the suite file."""
    text_field: str = "text"
    id_field: str = "id"
    split: Literal["document", "paragraph", "line"] = "paragraph"
    """How a .txt file is cut into examples (blank-line paragraphs by default)."""
    max_length: int = Field(1024, ge=8)
    """Window size in tokens (capped by the model's context)."""
    stride: int | None = Field(None, ge=1)
    """New tokens scored per window after the first; default max_length (lm-eval's layout)."""

    @model_validator(mode="after")
    def _stride_fits(self) -> PerplexityConfig:
        if self.stride is not None and self.stride > self.max_length:
            raise ValueError("stride must be <= max_length")
        return self


@SUITE_KINDS.register("perplexity")
class PerplexitySuite(SuiteKind):
    kind = "perplexity"
    config_model = PerplexityConfig
    config: PerplexityConfig

    def data_path(self) -> Path:
        return self.local_path(self.config.data, ("data",))

    def bind_metrics(self) -> list[BoundMetric]:
        spec = {
            "name": "perplexity",
            "args": {"max_length": self.config.max_length, "stride": self._stride()},
        }
        return [
            BoundMetric("perplexity", None, spec, "perplexity", False, False),
            *(
                BoundMetric(name, None, {**spec, "name": name}, agg, False, False)
                for name, agg in _EXTRAS.items()
            ),
        ]

    def _stride(self) -> int:
        return self.config.stride or self.config.max_length

    def load_examples(self) -> list[Example]:
        path = self.data_path()
        if path.suffix == ".txt":
            return self._from_txt(path)
        rows = read_jsonl(path)
        ids = example_ids(rows, self.config.id_field, path)
        examples = []
        for eid, (n, rec) in zip(ids, rows):
            text = rec.get(self.config.text_field)
            if not isinstance(text, str):
                raise UserError("expected a string", path=path, line=n, field=self.config.text_field)
            examples.append(Example(eid, rec, [], n))
        return examples

    def _from_txt(self, path: Path) -> list[Example]:
        if not path.is_file():
            raise UserError("data file not found", path=path)
        text = read_utf8(path)
        if self.config.split == "document":
            chunks = [(1, text)]
        else:
            sep = "\n\n" if self.config.split == "paragraph" else "\n"
            chunks, line = [], 1
            for part in text.split(sep):
                if part.strip():
                    chunks.append((line + len(part) - len(part.lstrip("\n")), part.strip()))
                line += part.count("\n") + sep.count("\n")
        return [
            Example(f"{self.config.split}-{i}", {self.config.text_field: t}, [], n)
            for i, (n, t) in enumerate(chunks, start=1)
            if t.strip()
        ]

    def request(self, example: Example) -> Request:
        params = {"max_length": self.config.max_length, "stride": self._stride()}
        return Request("rolling_loglikelihood", example.record[self.config.text_field], params)

    def score(self, example: Example, response: GenerationRow) -> list[ScoreRow]:
        res = response.result or {}
        nll, n = res.get("nll"), res.get("n_tokens", 0)
        if nll is None or not n:
            return self.error_scores(example, "no tokens scored")
        ppl = math.exp(nll / n)
        text = example.record[self.config.text_field]
        words, n_bytes = count_words(text), count_bytes(text)
        counts = {"nll": nll, "n_words": words, "n_bytes": n_bytes}
        return [
            ScoreRow(
                example.id,
                "perplexity",
                ppl,
                float(n),
                None,
                {"nll": nll, "n_tokens": n, "bits_per_token": nll / n / math.log(2)},
            ),
            ScoreRow(example.id, "word_perplexity", _exp(nll / words), float(words), None, counts),
            ScoreRow(example.id, "byte_perplexity", _exp(nll / n_bytes), float(n_bytes), None, counts),
            ScoreRow(example.id, "bits_per_byte", nll / n_bytes / math.log(2), float(n_bytes), None, counts),
        ]


# Metric name → aggregation; all are lower-is-better and weighted by their word/byte counts.
_EXTRAS = {"word_perplexity": "perplexity", "byte_perplexity": "perplexity", "bits_per_byte": "weighted_mean"}


def count_words(text: str) -> int:
    """lm-eval's `Task.count_words`: pieces between whitespace runs (empty edges count)."""
    return len(re.split(r"\s+", text))


def count_bytes(text: str) -> int:
    """lm-eval's `Task.count_bytes`: UTF-8 length."""
    return len(text.encode("utf-8"))


def _exp(x: float) -> float:
    # A long text over few words can overflow exp; inf keeps the row honest and out of nan.
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf
