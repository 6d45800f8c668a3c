"""The suite-kind contract. A kind turns a suite file into examples and scores outputs.

The runner only sees `Request`s and hands back responses; adding a kind or a metric never
touches it.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from harness.config import LocatedYaml, Strict
from harness.errors import UserError
from harness.registry import Registry
from harness.store import GenerationRow, ScoreRow


class SuiteConfig(Strict):
    """Keys every suite file has."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    """Short identifier used in tables and gate policies."""
    kind: str
    """task | perplexity (more kinds register themselves in SUITE_KINDS)."""
    description: str = ""
    version: int = 1
    """Bump when you change the suite in a way that makes old numbers incomparable."""


@dataclass(frozen=True)
class Example:
    """One data record, its id, references and where it came from."""

    id: str
    record: dict[str, Any]
    references: list[str]
    line: int


@dataclass(frozen=True)
class Request:
    """What a model must do for one example."""

    type: str
    """generate | rolling_loglikelihood"""
    prompt: str
    params: dict[str, Any]


@dataclass(frozen=True)
class BoundMetric:
    """A metric as a suite uses it: display name, scorer and the spec that re-creates it."""

    name: str
    scorer: Any
    spec: dict[str, Any]
    aggregation: str
    higher_is_better: bool
    binary: bool


class SuiteKind(ABC):
    """One suite file, loaded: config, examples, metrics."""

    kind: ClassVar[str]
    config_model: ClassVar[type[SuiteConfig]]

    def __init__(self, config: SuiteConfig, doc: LocatedYaml) -> None:
        self.config = config
        self.doc = doc
        self.path = doc.path
        self.metrics: list[BoundMetric] = self.bind_metrics()
        self.examples: list[Example] = self.load_examples()
        if not self.examples:
            raise UserError("the dataset is empty: no examples to evaluate", path=self.data_path())

    @abstractmethod
    def data_path(self) -> Path: ...

    @abstractmethod
    def bind_metrics(self) -> list[BoundMetric]: ...

    @abstractmethod
    def load_examples(self) -> list[Example]: ...

    @abstractmethod
    def request(self, example: Example, render_chat: Any) -> Request:
        """The request for one example; `render_chat(messages)` applies the model's template."""

    @abstractmethod
    def score(self, example: Example, response: GenerationRow) -> list[ScoreRow]: ...

    def error_scores(self, example: Example, error: str) -> list[ScoreRow]:
        """A failed generation: one error row per metric, never a 0."""
        return [ScoreRow(example.id, m.name, None, 1.0, error) for m in self.metrics]


SUITE_KINDS: Registry[type[SuiteKind]] = Registry("suite kind")


def read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, record) for every non-blank line; a bad line is a located user error."""
    if not path.is_file():
        raise UserError("data file not found", path=path)
    rows = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"not valid JSON ({e.msg}, column {e.colno})", path=path, line=n) from None
            if not isinstance(rec, dict):
                raise UserError(f"expected a JSON object, got {type(rec).__name__}", path=path, line=n)
            rows.append((n, rec))
    return rows


def example_ids(rows: Sequence[tuple[int, dict[str, Any]]], id_field: str | None, path: Path) -> list[str]:
    """Ids from `id_field` when records have it, else 'line-N'; duplicates are errors."""
    ids, seen = [], {}
    for n, rec in rows:
        if id_field and id_field in rec:
            eid = str(rec[id_field])
        else:
            eid = f"line-{n}"
        if eid in seen:
            raise UserError(
                f"duplicate example id '{eid}' (first on line {seen[eid]})",
                path=path,
                line=n,
                field=id_field,
            )
        seen[eid] = n
        ids.append(eid)
    return ids
