"""Language-independent text checks for `data check`: character n-gram near-duplicates and
mixed traditional/simplified Chinese.

Whitespace words mean nothing in Chinese, so similarity is measured on character 3-grams of
the normalised text with spaces removed, and lengths are counted in characters.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from trainers.data import normalize

NGRAM = 3
THRESHOLD = 0.8
"""Jaccard similarity of character 3-gram sets at or above which two records are near-duplicates."""
_BANDS, _ROWS = 16, 4  # MinHash LSH: pairs at J=0.8 collide with p≈0.9998, at J=0.3 with p≈0.12


def shingles(text: str) -> frozenset[str]:
    """Character n-grams of the normalised text, spaces removed (so spacing never matters)."""
    t = normalize(text).replace(" ", "")
    if len(t) <= NGRAM:
        return frozenset([t]) if t else frozenset()
    return frozenset(t[i : i + NGRAM] for i in range(len(t) - NGRAM + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def near_duplicate_groups(
    texts: Sequence[str], lines: Sequence[int], threshold: float = THRESHOLD
) -> list[list[int]]:
    """Groups of lines whose texts have character 3-gram Jaccard >= threshold (transitively).

    MinHash banding finds candidate pairs in about linear time; every candidate is then checked
    with the exact Jaccard, so the result has no false positives.
    """
    sets = [shingles(t) for t in texts]
    rng = np.random.default_rng(0)
    a = rng.integers(1, 2**63, _BANDS * _ROWS, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 2**63, _BANDS * _ROWS, dtype=np.uint64)
    buckets: dict[tuple[int, bytes], list[int]] = {}
    for i, s in enumerate(sets):
        if not s:
            continue
        h = np.fromiter((zlib.crc32(g.encode()) for g in s), dtype=np.uint64, count=len(s))
        with np.errstate(over="ignore"):  # multiply-add modulo 2**64 is the hash family
            sig = (a[:, None] * h[None, :] + b[:, None]).min(axis=1)
        for band in range(_BANDS):
            key = (band, sig[band * _ROWS : (band + 1) * _ROWS].tobytes())
            buckets.setdefault(key, []).append(i)
    parent = list(range(len(sets)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    checked: set[tuple[int, int]] = set()
    for members in buckets.values():
        for k, i in enumerate(members):
            for j in members[k + 1 :]:
                if (i, j) in checked or find(i) == find(j):
                    continue
                checked.add((i, j))
                if jaccard(sets[i], sets[j]) >= threshold:
                    parent[find(j)] = find(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(sets)):
        if sets[i]:
            groups.setdefault(find(i), []).append(lines[i])
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)


@functools.cache
def _only_chars() -> tuple[frozenset[str], frozenset[str]]:
    """(simplified-only, traditional-only) characters from OpenCC's character tables: a
    character is X-only when converting it never yields itself (后 → 後/后 is both)."""
    import opencc

    folder = Path(opencc.__file__).parent / "dictionary"

    def only(name: str) -> frozenset[str]:
        out = set()
        for line in (folder / name).read_text(encoding="utf-8").splitlines():
            src, _, targets = line.partition("\t")
            if len(src) == 1 and src not in targets.split():
                out.add(src)
        return frozenset(out)

    return only("STCharacters.txt"), only("TSCharacters.txt")


def script_counts(text: str) -> tuple[int, int]:
    """(simplified-only, traditional-only) character counts of `text`."""
    simp, trad = _only_chars()
    return sum(c in simp for c in text), sum(c in trad for c in text)
