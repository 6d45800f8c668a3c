"""Batch sizes for local models: a fixed number, or `auto` (the largest batch that fits).

`auto` works as lm-eval's `batch_size=auto`: on a GPU the first batch is tried at
`AUTO_START_GPU` requests and halved on every out-of-memory error until it fits (requests are
sorted longest first, so the batch that fits the first one fits the rest); the size found is
kept for the rest of the loop. On CPU and MPS, where memory errors are rare and big batches
are slower rather than faster, `auto` starts at `DEFAULT_BATCH` (still halving on a memory
error). A fixed size behaves exactly as before: no retry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal, TypeVar, overload

from harness.errors import UserError

log = logging.getLogger(__name__)

BatchSize = int | Literal["auto"]
DEFAULT_BATCH = 8
"""What `auto` starts from on CPU/MPS, and what backends without OOM handling use for it."""
AUTO_START_GPU = 64
"""lm-eval's default `max_batch_size` for `batch_size=auto`."""

T = TypeVar("T")


def parse_batch_size(text: str | int) -> BatchSize:
    """`auto` or a positive integer, as written on the command line."""
    if text == "auto":
        return "auto"
    try:
        n = int(text)
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise UserError(f"--batch-size must be a positive integer or auto, not '{text}'", field="batch_size")
    return n


def fixed(batch_size: BatchSize, default: int = DEFAULT_BATCH) -> int:
    """A number for loops that do not search (other backends, lm-eval on CPU)."""
    return default if batch_size == "auto" else int(batch_size)


def is_oom(e: BaseException) -> bool:
    """torch.cuda.OutOfMemoryError, or the RuntimeError text CUDA, MPS and the CPU allocator use."""
    if type(e).__name__ == "OutOfMemoryError":
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def free_memory() -> None:
    """Give cached blocks back after an OOM, so the smaller retry can use them."""
    import gc

    gc.collect()
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class Batcher:
    """One request loop's batch size; with `auto`, what fitted is remembered across calls."""

    def __init__(self, batch_size: BatchSize, device: str) -> None:
        self.auto = batch_size == "auto"
        if self.auto:
            self.size = AUTO_START_GPU if device.startswith("cuda") else DEFAULT_BATCH
        else:
            self.size = int(batch_size)

    @overload
    def run(
        self, order: Sequence[int], call: Callable[[list[int]], T]
    ) -> Iterator[tuple[list[int], T, float]]: ...  # nothing kept: every error is raised
    @overload
    def run(
        self, order: Sequence[int], call: Callable[[list[int]], T], keep: tuple[type[BaseException], ...]
    ) -> Iterator[tuple[list[int], T | BaseException, float]]: ...
    def run(
        self,
        order: Sequence[int],
        call: Callable[[list[int]], T],
        keep: tuple[type[BaseException], ...] = (),
    ) -> Iterator[tuple[list[int], T | BaseException, float]]:
        """(batch, call(batch) or the kept exception, seconds) for consecutive slices of `order`.

        With `auto`, an out-of-memory error halves the batch and retries it; at size 1 (or with
        a fixed size) the error is yielded when its type is in `keep`, else raised.
        """
        start = 0
        while start < len(order):
            batch = list(order[start : start + self.size])
            t0 = time.perf_counter()
            try:
                out: Any = call(batch)
            except keep + (RuntimeError,) as e:
                if self.auto and self.size > 1 and is_oom(e):
                    free_memory()
                    while self.size >= len(batch) and self.size > 1:  # halve below what failed
                        self.size //= 2
                    log.info("out of memory at batch size %d: retrying at %d", len(batch), self.size)
                    continue
                if not isinstance(e, keep):
                    raise
                out = e
            yield batch, out, time.perf_counter() - t0
            start += len(batch)
