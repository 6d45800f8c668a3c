"""`run --shard K/N`: the examples one CI job evaluates, so N jobs together cover a suite once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from harness.errors import UserError

T = TypeVar("T")


def parse_shard(text: str) -> tuple[int, int]:
    """`K/N` (1 <= K <= N) as (K, N); anything else is a user error."""
    k, sep, n = text.partition("/")
    try:
        kn = (int(k), int(n)) if sep else None
    except ValueError:
        kn = None
    if kn is None or not 1 <= kn[0] <= kn[1]:
        raise UserError(f"--shard takes K/N with 1 <= K <= N (e.g. 2/3), got '{text}'", field="shard")
    return kn


def shard_examples(examples: Sequence[T], shard: tuple[int, int] | None) -> list[T]:
    """Every N-th example in example-id order, starting at the K-th.

    By id, not by position, so a shard's examples do not depend on the order of the data file;
    sorted and strided rather than hashed, so the N shards differ in size by at most one.
    """
    if shard is None:
        return list(examples)
    k, n = shard
    ids = sorted(_id(e) for e in examples)
    mine = set(ids[k - 1 :: n])
    return [e for e in examples if _id(e) in mine]


def shard_of(config: dict[str, Any]) -> tuple[int, int] | None:
    """The (K, N) a stored run's config was sharded with, if any."""
    s = config.get("shard")
    return (int(s["k"]), int(s["n"])) if s else None


def _id(example: Any) -> str:
    return str(example.id)
