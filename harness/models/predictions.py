"""`predictions:FILE.jsonl`: outputs another system generated, replayed as a model's run.

One JSON object per line, in either shape:

    {"id": "q-1", "output": "..."}              also "prediction" or "predict" for the text
    {"prompt": "...", "predict": "...", "label": "..."}   LLaMA-Factory generated_predictions.jsonl

Records are matched to the suite's examples by `id`; files without ids (LLaMA-Factory's) are
matched by order with a warning that says so, `?match=order` asks for order explicitly, and
`?match=id` (`--require-ids`) refuses a file without ids. Every mismatch — an id the
suite lacks, an example with no prediction, an id twice — is a user error naming it, raised
before anything is stored. A `null` prediction is kept as a failed generation, never a 0.
The outputs are replayed verbatim: the suite's generation settings (stop strings, lengths)
were the other system's business.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.models.base import Capabilities, Generated, prepare_local
from harness.models.resolve import ResolvedModel

log = logging.getLogger(__name__)

OUTPUT_FIELDS = ("output", "prediction", "predict")


@dataclass(frozen=True)
class Prediction:
    line: int
    id: str | None
    output: str | None
    label: str | None


def read_predictions(path: Path) -> list[Prediction]:
    """Parse the file; a bad line is a located user error."""
    from harness.suite import read_jsonl

    preds = []
    for n, rec in read_jsonl(path):
        keys = [k for k in OUTPUT_FIELDS if k in rec]
        if len(keys) > 1:  # which one was meant? never silently drop one
            raise UserError(
                f"both '{keys[0]}' and '{keys[1]}': give one prediction field per line",
                path=path,
                line=n,
                field=keys[1],
            )
        key = keys[0] if keys else None
        if key is None:
            raise UserError(
                f"no prediction field (expected one of {', '.join(OUTPUT_FIELDS)})", path=path, line=n
            )
        out = rec[key]
        if out is not None and not isinstance(out, str):
            raise UserError(
                f"expected a string or null, got {type(out).__name__}", path=path, line=n, field=key
            )
        eid = rec.get("id")
        if eid is not None and not isinstance(eid, (str, int)):
            raise UserError(
                f"expected a string or integer id, got {type(eid).__name__}", path=path, line=n, field="id"
            )
        label = rec.get("label")
        preds.append(
            Prediction(n, None if eid is None else str(eid), out, label if isinstance(label, str) else None)
        )
    if not preds:
        raise UserError("the predictions file is empty", path=path)
    return preds


def match_predictions(
    preds: list[Prediction], suite_ids: Sequence[str], run_ids: Sequence[str], match: str | None, path: Path
) -> dict[str, Prediction]:
    """example id → prediction for every id in `run_ids` (the examples this run covers)."""
    with_id = [p for p in preds if p.id is not None]
    if match is None:  # by id when the file has ids; LLaMA-Factory's files have none
        match = "id" if with_id else "order"
    if match == "order":
        if len(preds) > len(suite_ids):
            raise UserError(
                f"{len(preds)} predictions but the suite has {len(suite_ids)} examples "
                f"(line {preds[len(suite_ids)].line} has no example to match by order)",
                path=path,
            )
        if len(preds) < len(run_ids):
            raise UserError(
                f"{len(preds)} predictions but {len(run_ids)} examples to score: example "
                f"'{run_ids[len(preds)]}' has no prediction (matched by order)",
                path=path,
            )
        return dict(zip(run_ids, preds))
    if len(with_id) < len(preds):
        first = next(p for p in preds if p.id is None)
        raise UserError(
            "record has no 'id' and ids are required (add ids, or match by order with "
            "predictions:FILE?match=order)",
            path=path,
            line=first.line,
            field="id",
        )
    by_id: dict[str, Prediction] = {}
    for p in preds:
        assert p.id is not None
        if p.id in by_id:
            raise UserError(
                f"duplicate id '{p.id}' (first on line {by_id[p.id].line})", path=path, line=p.line
            )
        by_id[p.id] = p
    known = set(suite_ids)
    extra = [p for p in preds if p.id not in known]
    if extra:
        raise UserError(
            f"id '{extra[0].id}' is not an example of the suite"
            + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""),
            path=path,
            line=extra[0].line,
        )
    missing = [i for i in run_ids if i not in by_id]
    if missing:
        raise UserError(
            f"no prediction for example '{missing[0]}'"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
            path=path,
        )
    return {i: by_id[i] for i in run_ids}


class PredictionsBackend:
    """Stands in for a model: `replay` hands back the file's outputs by example id.

    Cache keys include the example id (capability `replay`): two examples with the same prompt
    may differ here."""

    capabilities = Capabilities(
        requests=frozenset({"generate"}),
        replay=True,
        why_not={
            "loglikelihood": "a predictions file holds generated text, no log-probabilities",
            "rolling_loglikelihood": "a predictions file has no log-likelihoods (perplexity needs a model)",
            "local_weights": "a predictions file has no weights",
        },
    )

    def __init__(self, resolved: ResolvedModel) -> None:
        self.resolved = resolved
        self.path = Path(resolved.spec.path)
        self.preds = read_predictions(self.path)
        self.calls: dict[str, int] = {}  # no model is ever called
        self._bound: dict[str, Prediction] = {}
        self._said: set[str] = set()

    def render_chat(self, messages: list[dict[str, str]]) -> str:
        """No chat template: the stored prompt is the suite's own text."""
        return "\n".join(m["content"] for m in messages)

    def prepare(self, request: Any) -> Any:
        return prepare_local(request, self.render_chat)

    def preflight(self, needed: set[str], what: str) -> None:
        """Nothing to verify: the capabilities are static."""

    def describe(self) -> dict[str, Any]:
        return {"backend": "predictions", "file": str(self.path)}

    def loglikelihood(self, *args: Any, **kwargs: Any) -> Any:
        raise UserError("a predictions file has no log-probabilities")

    def bind(self, suite: Any, examples: Sequence[Any]) -> None:
        """Match the file to `examples` of `suite`; every mismatch is a UserError."""
        if suite.kind != "task":
            raise UserError(
                f"a predictions file holds generated text; suite '{suite.config.name}' is a "
                f"{suite.kind} suite (only task suites can be scored from predictions)",
                path=self.path,
            )
        run_ids = [e.id for e in examples]
        matched = match_predictions(
            self.preds, [e.id for e in suite.examples], run_ids, self.resolved.options.get("match"), self.path
        )
        if self.resolved.options.get("match") is None and not any(p.id is not None for p in self.preds):
            self._say_by_position(suite.config.name, run_ids)
        self._warn_on_label_drift(matched, examples)
        self._bound = matched  # runs are sequential: each run_suite binds its own suite first

    def _say_by_position(self, suite: str, run_ids: Sequence[str]) -> None:
        if suite in self._said:  # bound once to check and once per run: said once
            return
        self._said.add(suite)
        log.warning(
            "%s has no ids: its %d predictions are matched to suite '%s' by position (line %d → "
            "example '%s', …); a file in another order scores the wrong answers. Add ids, or pass "
            "--require-ids (predictions:FILE?match=id) to refuse a file without them",
            self.path.name, len(self.preds), suite, self.preds[0].line, run_ids[0] if run_ids else "–",
        )  # fmt: skip

    def _warn_on_label_drift(self, matched: dict[str, Prediction], examples: Sequence[Any]) -> None:
        # Order matching trusts the file's order; LLaMA-Factory's labels let us check it.
        off = [
            (e.id, matched[e.id].line)
            for e in examples
            if (label := matched[e.id].label) is not None
            and e.references
            and label.strip() not in (r.strip() for r in e.references)
        ]
        if off:
            eid, line = off[0]
            log.warning(
                "%s: %d prediction label(s) differ from the suite's references (first: line %d, "
                "example '%s'); is the file in the suite's order?",
                self.path,
                len(off),
                line,
                eid,
            )

    def replay(self, example_ids: Sequence[str]) -> Iterator[list[tuple[int, Generated]]]:
        """Outputs for `example_ids`, as one batch of (index, Generated)."""
        out = []
        for k, eid in enumerate(example_ids):
            p = self._bound.get(eid)
            if p is None:  # bind() guarantees this for the examples of a run
                raise UserError(f"no prediction bound for example '{eid}'", path=self.path)
            err = (
                None if p.output is not None else f"no prediction in {self.path.name} (line {p.line} is null)"
            )
            out.append((k, Generated(p.output, None, None, 0.0, err)))
        yield out

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        raise UserError("a predictions file cannot generate new text")

    def rolling_loglikelihood(self, *args: Any, **kwargs: Any) -> Any:
        raise UserError("a predictions file has no log-likelihoods (perplexity needs a model)")
