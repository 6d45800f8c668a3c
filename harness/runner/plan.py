"""Plan a run: which examples still need work, their requests and cache keys."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.suite import Example, Request, SuiteKind


@dataclass(frozen=True)
class Item:
    """One example to finish in this run."""

    example: Example
    request: Request
    cache_key: str


def cache_key(fingerprint: str, request: Request, seed: int | None, example_id: str | None = None) -> str:
    """hash(model fingerprint, what is sent — rendered prompt or chat messages —, params); the
    seed only matters when sampling, so greedy outputs are shared across seeds. `example_id` is
    part of the key only for backends whose output depends on the example, not the prompt
    (predictions files). Keys of rendered-prompt requests are unchanged from earlier versions."""
    params = dict(request.params)
    if params.get("temperature", 0) > 0:
        params["seed"] = seed
    key: dict[str, Any] = {
        "fp": fingerprint,
        "type": request.type,
        "prompt": request.prompt,
        "params": params,
    }
    if request.messages is not None:
        key["messages"] = list(request.messages)
    if request.continuation is not None:
        key["continuation"] = request.continuation
    if example_id is not None:
        key["example"] = example_id
    blob = json.dumps(key, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def plan_items(
    suite: SuiteKind,
    examples: list[Example],
    done: set[str],
    fingerprint: str,
    prepare: Callable[[Request], Request],
    seed: int | None,
    keys_by_example: bool = False,
) -> list[Item]:
    """Items for the examples not in `done`; `prepare` is the backend's (what it will send)."""
    items = []
    for ex in examples:
        if ex.id in done:
            continue
        req = prepare(suite.request(ex))
        items.append(Item(ex, req, cache_key(fingerprint, req, seed, ex.id if keys_by_example else None)))
    return items
