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


def cache_key(fingerprint: str, request: Request, seed: int | None) -> str:
    """hash(model fingerprint, rendered prompt, generation params); the seed only matters
    when sampling, so greedy outputs are shared across seeds."""
    params = dict(request.params)
    if params.get("temperature", 0) > 0:
        params["seed"] = seed
    blob = json.dumps(
        {"fp": fingerprint, "type": request.type, "prompt": request.prompt, "params": params},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def plan_items(
    suite: SuiteKind,
    examples: list[Example],
    done: set[str],
    fingerprint: str,
    render_chat: Any,
    seed: int | None,
) -> list[Item]:
    items = []
    for ex in examples:
        if ex.id in done:
            continue
        req = suite.request(ex, render_chat)
        items.append(Item(ex, req, cache_key(fingerprint, req, seed)))
    return items
