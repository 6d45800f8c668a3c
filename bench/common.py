"""Helpers for benchmarks: timing and side-by-side ratio tables (measured in one process)."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def timed(fn: Callable[[], object], repeat: int = 1) -> tuple[float, object]:
    """Median wall time of `repeat` calls, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def report(title: str, rows: list[tuple[str, float]], baseline: str, target: str = "") -> None:
    print(f"\n== {title}")
    base = dict(rows)[baseline]
    for name, secs in rows:
        print(f"  {name:<34} {secs:9.3f} s   {secs / base:6.3f}x of {baseline}")
    if target:
        print(f"  target: {target}")
