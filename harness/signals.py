"""SIGTERM is an interrupt, like Ctrl-C; store transactions are never cut in half by either.

CI systems and `timeout` cancel a job with SIGTERM. Python's default is to die on the spot,
leaving a run `running`; here it raises `KeyboardInterrupt` like Ctrl-C, so the runner discards
the batch in flight, marks the run `interrupted` and the CLI exits 143 (128 + SIGTERM).

A signal that arrives inside `deferred()` (a store transaction) is held until the block ends:
the batch being written lands whole, then the interrupt is raised.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _State:
    installed: bool = False
    received: int | None = None
    """The last signal turned into an interrupt (SIGINT or SIGTERM)."""
    depth: int = 0
    pending: int | None = None
    interrupted: list[tuple[str, str, str]] = field(default_factory=list)
    """(kind, id, store path) of each run marked interrupted; kind is 'run' or 'training'."""


_state = _State()


def install() -> None:
    """Turn SIGTERM (and SIGINT, unless it is ignored) into KeyboardInterrupt; main thread only."""
    if _state.installed or threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGTERM, _handler)
    # A background job inherits SIGINT ignored: keep it ignored, as the shell asked.
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _handler)
    _state.installed = True


def _handler(signum: int, frame: Any) -> None:
    _state.received = signum
    if _state.depth:
        _state.pending = signum
        return
    raise KeyboardInterrupt


@contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block is done (a transaction commits or rolls back whole)."""
    _state.depth += 1
    try:
        yield
    finally:
        _state.depth -= 1
        if not _state.depth and _state.pending is not None:
            _state.pending = None
            raise KeyboardInterrupt


def note_interrupted(kind: str, ref: str, store_path: str) -> None:
    """Remember that run `ref` was marked interrupted, for the CLI's resume hint."""
    _state.interrupted.append((kind, ref, store_path))


def interrupted() -> list[tuple[str, str, str]]:
    return list(_state.interrupted)


def reason() -> str:
    """What to store as the interrupted run's error."""
    return "terminated (SIGTERM)" if _state.received == signal.SIGTERM else "interrupted by user"


def exit_code() -> int:
    """143 after SIGTERM, 130 after Ctrl-C (the shell conventions: 128 + signal number)."""
    return 128 + signal.SIGTERM if _state.received == signal.SIGTERM else 130
