"""The suite-kind contract. A kind turns a suite file into examples and scores outputs.

The runner only sees `Request`s and hands back responses; adding a kind or a metric never
touches it. The contract lives in `harness/` so the core (runner, backends) never imports
`suites/`; the kinds themselves live in `suites/` and register in `SUITE_KINDS`.
"""

from __future__ import annotations

import hashlib
import io
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from pydantic import Field

from harness.config import LocatedYaml, Strict
from harness.errors import UserError
from harness.registry import Registry
from harness.store import GenerationRow, ScoreRow
from harness.textfile import read_utf8

if TYPE_CHECKING:
    from harness.models.base import Backend
    from harness.store import Store


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


REQUEST_TYPES = ("generate", "loglikelihood", "rolling_loglikelihood")


@dataclass(frozen=True)
class Request:
    """What a model must do for one example.

    A chat request carries `messages` (system + user turns): a local backend renders them with
    the model's own template, a chat endpoint receives them as they are. A raw request carries
    `prompt` (the text sent verbatim; the text scored for rolling log-likelihood; the context for
    log-likelihood, with `continuation`). The cache key hashes exactly what the backend sends.
    """

    type: str
    """generate | loglikelihood | rolling_loglikelihood"""
    prompt: str | None
    params: dict[str, Any]
    messages: tuple[dict[str, str], ...] | None = None
    continuation: str | None = None
    """loglikelihood: the text whose log-probability given `prompt` is wanted."""

    @property
    def is_chat(self) -> bool:
        return self.messages is not None

    def sent_text(self) -> str:
        """What is stored in `generations.prompt`: the text, or the messages as JSON."""
        if self.messages is not None:
            return json.dumps(list(self.messages), ensure_ascii=False)
        return self.prompt or ""


@dataclass(frozen=True)
class BoundMetric:
    """A metric as a suite uses it: display name, scorer and the spec that re-creates it."""

    name: str
    scorer: Any
    spec: dict[str, Any]
    aggregation: str
    higher_is_better: bool
    binary: bool
    version: int = 1
    """The metric implementation's version (its registration's `version`): bumped when what it
    computes changes, so runs scored by two definitions are never compared (harness.measurement)."""


class Suite(ABC):
    """One suite file, loaded: config, examples, metrics. A kind is a `SuiteKind` (the runner
    asks it for one request per example and scores each output) or a `SelfDrivenSuite` (it
    drives its own request loop)."""

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

    def local_path(self, value: str | Path, loc: tuple[Any, ...], extra_roots: Sequence[Path] = ()) -> Path:
        """A file the suite names at `loc`, resolved inside the suite's folder (or an allowed data
        root, `harness.data_root`); anything else is an error located at that field."""
        from harness.data_root import inside_suite

        field = ".".join(str(p) for p in loc) or None
        return inside_suite(
            self.path, value, line=self.doc.line_of(loc), field=field, extra_roots=extra_roots
        )

    @abstractmethod
    def bind_metrics(self) -> list[BoundMetric]: ...

    @abstractmethod
    def load_examples(self) -> list[Example]: ...

    @abstractmethod
    def request_types(self) -> set[str]:
        """Request types this suite sends, checked against a backend's capabilities before the
        first call."""

    def needs(self) -> set[str]:
        """Extra backend capabilities beyond request types (e.g. 'local_weights' for a kind
        that hands the loaded model to another library)."""
        return set()

    def template_option(self) -> str | None:
        """The suite's `chat_template` option (`trained`, `base` or a file), if it has one."""
        return None

    def measurement_facts(self) -> dict[str, Any]:
        """What else decides the meaning of this kind's numbers, for the run's measurement record
        (harness.measurement): e.g. lm-eval's version and the task configs of a benchmark."""
        return {}

    def error_scores(self, example: Example, error: str) -> list[ScoreRow]:
        """A failed generation: one error row per metric, never a 0."""
        return [ScoreRow(example.id, m.name, None, 1.0, error) for m in self.metrics]


class SuiteKind(Suite):
    """A kind the runner drives: one request per example, each output scored as it lands."""

    @abstractmethod
    def request(self, example: Example) -> Request:
        """The request for one example (messages or raw text; the backend renders chat)."""

    def request_types(self) -> set[str]:
        """Default: the type of the first example's request."""
        return {self.request(self.examples[0]).type} if self.examples else set()

    @abstractmethod
    def score(self, example: Example, response: GenerationRow) -> list[ScoreRow]: ...


class RunSettings(Protocol):
    """What a self-driven kind reads of the run's options (harness.runner.RunOptions)."""

    @property
    def limit(self) -> int | None: ...
    @property
    def seed(self) -> int: ...
    @property
    def batch_size(self) -> int | Literal["auto"]: ...


class SelfDrivenSuite(Suite):
    """A kind that drives its own request loop (lm-eval's for benchmarks; batched, concurrent
    judging for judge suites): the runner creates the run, hands it to `execute_run` and marks
    it done; it plans no requests and scores nothing itself. Such runs cannot be sharded."""

    @abstractmethod
    def execute_run(
        self,
        store: Store,
        run_id: str,
        backend: Backend,
        options: RunSettings,
        progress: Callable[[int], None],
    ) -> None:
        """Do every example of `run_id` not stored yet, writing rows to `store` as they finish;
        `progress(n)` after each n stored."""


SUITE_KINDS: Registry[Suite] = Registry("suite kind")  # entries: the Suite classes

SuiteLoader = Callable[[str | Path], Suite]
_loader: list[SuiteLoader | str] = []


def register_suite_loader(loader: SuiteLoader | str) -> None:
    """How a suite name or file becomes a `Suite`: registered by the package that holds the kinds
    (`suites/` registers `suites.loader:load_suite`), so the core loads suites without importing
    it. A "module:function" string is imported on first use (nothing heavy at start-up)."""
    _loader[:] = [loader]


def load_suite(ref: str | Path) -> Suite:
    """The suite `ref` (a built-in name or a file), parsed and validated by the registered loader."""
    if not _loader:
        raise RuntimeError("no suite loader registered: import tunegate (or suites) first")
    loader = _loader[0]
    if isinstance(loader, str):
        import importlib

        module, _, name = loader.partition(":")
        loader = _loader[0] = getattr(importlib.import_module(module), name)
    assert not isinstance(loader, str)
    return loader(ref)


def parse_json_line(text: str, path: Path, line: int | None) -> Any:
    """One JSON value, nested no deeper than `harness.limits.JSON_DEPTH`; else a located error."""
    from harness.limits import JSON_DEPTH

    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"not valid JSON ({e.msg}, column {e.colno})", path=path, line=line) from None
    except RecursionError:
        value = None
        depth = JSON_DEPTH.int_value() + 1
    else:
        depth = json_depth(value, JSON_DEPTH.int_value())
    if depth > JSON_DEPTH.int_value():
        raise UserError(f"the JSON is nested deeper than {JSON_DEPTH.named()}", path=path, line=line)
    return value


def json_depth(value: Any, limit: int) -> int:
    """How deeply `value` nests lists and objects, counted up to `limit + 1` (iteratively)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict | list):
            deepest = max(deepest, d)
            if deepest > limit:
                return deepest
            stack.extend((c, d + 1) for c in (v.values() if isinstance(v, dict) else v))
    return deepest


def read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, record) for every non-blank line; a bad line is a located user error."""
    if not path.is_file():
        raise UserError("data file not found", path=path)
    rows = []
    with io.StringIO(read_utf8(path)) as f:  # invalid UTF-8: an error naming file and line
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            rec = parse_json_line(line, path, n)
            if not isinstance(rec, dict):
                raise UserError(f"expected a JSON object, got {type(rec).__name__}", path=path, line=n)
            rows.append((n, rec))
    return rows


def example_ids(rows: Sequence[tuple[int, dict[str, Any]]], id_field: str | None, path: Path) -> list[str]:
    """Ids from `id_field` when records have it, else 'line-N'; duplicates are errors."""
    ids: list[str] = []
    seen: dict[str, int] = {}
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


def content_hash(suite: Suite) -> str:
    """Hash of the suite file and its data: a changed suite is a different suite."""
    h = hashlib.sha256()
    h.update(suite.path.read_bytes())
    h.update(b"\0")
    h.update(suite.data_path().read_bytes())
    return h.hexdigest()


def suite_id(suite: Suite) -> str:
    return f"{suite.config.name}-{content_hash(suite)[:10]}"
