"""Plan a run: which examples still need work, their requests and cache keys."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from suites.base import Example, Request, SuiteKind


@dataclass(frozen=True)
class Item:
    """One example to finish in this run."""

    example: Example
    request: Request
    cache_key: str


def cache_key(fingerprint: str, request: Request, seed: int | None, example_id: str | None = None) -> str:
    """hash(model fingerprint, rendered prompt, generation params); the seed only matters
    when sampling, so greedy outputs are shared across seeds. `example_id` is part of the key
    only for backends whose output depends on the example, not the prompt (predictions files)."""
    params = dict(request.params)
    if params.get("temperature", 0) > 0:
        params["seed"] = seed
    key = {"fp": fingerprint, "type": request.type, "prompt": request.prompt, "params": params}
    if example_id is not None:
        key["example"] = example_id
    blob = json.dumps(key, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def plan_items(
    suite: SuiteKind,
    examples: list[Example],
    done: set[str],
    fingerprint: str,
    render_chat: Any,
    seed: int | None,
    keys_by_example: bool = False,
) -> list[Item]:
    items = []
    for ex in examples:
        if ex.id in done:
            continue
        req = suite.request(ex, render_chat)
        items.append(Item(ex, req, cache_key(fingerprint, req, seed, ex.id if keys_by_example else None)))
    return items
