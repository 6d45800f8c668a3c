"""Judgments in the store: keyed by what was judged, so a re-run or a report never pays twice.

Failed judgments are stored too (error + raw text) but are never cache hits, like failed
generations: the next run asks again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.secrets import scrub
from harness.store import Store
from harness.store.queries_judges import put_judgments, successful_judgments


@dataclass(frozen=True)
class Judgment:
    """One judge call's outcome (one order of a pair, one criterion of a local judge, ...)."""

    cache_key: str
    judge: str
    """rubric | pairwise | local"""
    judge_model: str
    spec: dict[str, Any]
    score: float | None
    scores: dict[str, Any] | None
    rationale: str | None
    raw: str | None
    error: str | None
    mode: str | None
    attempts: int = 1
    latency_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    @classmethod
    def from_reply(
        cls,
        key: str,
        judge: str,
        judge_model: str,
        spec: dict[str, Any],
        reply: Any,
        *,
        score: float | None = None,
        scores: dict[str, Any] | None = None,
        rationale: str | None = None,
        raw: str | None = None,
    ) -> Judgment:
        """The row for one endpoint call (`judges.client.Reply`): its raw text, error and cost."""
        return cls(
            key, judge, judge_model, spec, score, scores, rationale,
            reply.raw if raw is None else raw, reply.error, reply.mode, reply.attempts,
            reply.latency_s, reply.prompt_tokens, reply.completion_tokens,
        )  # fmt: skip


def judgment_key(judge_model: str, rubric: dict[str, Any], prompt: str, outputs: Sequence[str]) -> str:
    """hash(judge model, rubric, prompt, candidate output(s)); order of outputs matters."""
    blob = json.dumps(
        {"judge": judge_model, "rubric": rubric, "prompt": prompt, "outputs": list(outputs)},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def cached_judgments(store: Store, keys: Iterable[str]) -> dict[str, Judgment]:
    """Successful judgments for these keys."""
    return {r[0]: Judgment(*r) for r in successful_judgments(store, keys)}


def write_judgments(store: Store, rows: Sequence[Judgment]) -> None:
    put_judgments(
        store,
        [
            (
                j.cache_key,
                j.judge,
                j.judge_model,
                json.dumps(j.spec, sort_keys=True),
                j.score,
                None if j.scores is None else scrub(json.dumps(j.scores, sort_keys=True)),
                scrub(j.rationale),  # a judge may quote the key it was sent
                scrub(j.raw),
                scrub(j.error),
                j.mode,
                j.attempts,
                j.latency_s,
                j.prompt_tokens,
                j.completion_tokens,
            )
            for j in rows
        ],
    )
