"""`perplexity` suites: token-level NLL of held-out text, strided windows for long texts."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from harness.errors import UserError
from harness.store import GenerationRow, ScoreRow
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
        return (self.path.parent / self.config.data).resolve()

    def bind_metrics(self) -> list[BoundMetric]:
        spec = {
            "name": "perplexity",
            "args": {"max_length": self.config.max_length, "stride": self._stride()},
        }
        return [BoundMetric("perplexity", None, spec, "perplexity", False, False)]

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
        text = path.read_text(encoding="utf-8")
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

    def request(self, example: Example, render_chat: Any) -> Request:
        params = {"max_length": self.config.max_length, "stride": self._stride()}
        return Request("rolling_loglikelihood", example.record[self.config.text_field], params)

    def score(self, example: Example, response: GenerationRow) -> list[ScoreRow]:
        res = response.result or {}
        nll, n = res.get("nll"), res.get("n_tokens", 0)
        if nll is None or not n:
            return self.error_scores(example, "no tokens scored")
        ppl = math.exp(nll / n)
        return [
            ScoreRow(
                example.id,
                "perplexity",
                ppl,
                float(n),
                None,
                {"nll": nll, "n_tokens": n, "bits_per_token": nll / n / math.log(2)},
            )
        ]
