"""Drive one load level on an event loop in a background thread; hand finished requests to the
caller's thread (which stores them) in batches, so writing never stalls the clock.

Closed loop: `concurrency` workers, each sending its next prompt as soon as its last request
finished. Open loop: arrivals of a Poisson process at `rate` per second (seeded), each sent at
its arrival time whatever is in flight, so a server that falls behind builds a queue, as in
production. Prompts are replayed in order, round the list again when it runs out.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.load.client import StreamClient, Timed
from harness.load.plan import Level, LoadOptions


@dataclass(frozen=True)
class Prompt:
    """One prepared request to replay: where it came from and what is sent."""

    suite_id: str
    example_id: str
    path: str
    body: dict[str, Any]


@dataclass(frozen=True)
class Sent:
    """A finished request of a level, in send order (`seq`)."""

    seq: int
    prompt: Prompt
    scheduled_s: float | None
    """Open loop: its arrival time from the level's start."""
    timed: Timed


MakeClient = Callable[[int], StreamClient]
OPEN_LOOP_CONNECTIONS = 1000
"""Open loop: most connections at once; requests beyond wait for one (counted in their latency)."""
_DONE = object()


async def _closed(
    client: StreamClient,
    prompts: list[Prompt],
    n_workers: int,
    until: Callable[[int, float], bool],
    emit: Callable[[Sent], None],
    stop: threading.Event,
    origin: float,
) -> None:
    counter = iter(range(1 << 62))

    async def worker() -> None:
        while not stop.is_set():
            seq = next(counter)
            if not until(seq, time.perf_counter() - origin):
                return
            p = prompts[seq % len(prompts)]
            emit(Sent(seq, p, None, await client.send(p.path, p.body, origin)))

    await asyncio.gather(*(worker() for _ in range(n_workers)))


async def _open(client: StreamClient, prompts: list[Prompt], rate: float, seed: int,
                until: Callable[[int, float], bool], emit: Callable[[Sent], None], stop: threading.Event,
                origin: float) -> None:  # fmt: skip
    rng = np.random.default_rng(seed)
    tasks: set[asyncio.Task[None]] = set()
    at, seq = 0.0, 0

    async def one(seq: int, p: Prompt, scheduled: float) -> None:
        emit(Sent(seq, p, scheduled, await client.send(p.path, p.body, origin)))

    while not stop.is_set():
        if seq:  # the first request leaves at once; then exponential gaps
            at += float(rng.exponential(1.0 / rate))
        if not until(seq, at):
            break
        wait = origin + at - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        p = prompts[seq % len(prompts)]
        task = asyncio.create_task(one(seq, p, at))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        seq += 1
    if tasks:
        await asyncio.gather(*tasks)


def _until(options: LoadOptions, n: int | None = None) -> Callable[[int, float], bool]:
    if n is not None:
        return lambda seq, t: seq < n
    if options.duration_s is not None:
        d = options.duration_s
        return lambda seq, t: t < d
    total = options.requests or 0
    return lambda seq, t: seq < total


def drive(
    make_client: MakeClient,
    prompts: list[Prompt],
    level: Level,
    options: LoadOptions,
    seed: int,
    *,
    warmup: int = 0,
    batch_rows: int = 64,
    batch_seconds: float = 0.5,
) -> Iterator[list[Sent]]:
    """Run `level` (after `warmup` requests that are not handed back) and yield its finished
    requests in batches. Ctrl-C in the caller's thread stops the loop: requests in flight are
    cancelled and not handed back."""
    out: queue.Queue[Any] = queue.Queue()
    stop = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        state["loop"] = asyncio.get_running_loop()
        # open loop: a connection per request in flight (a server's queue is its own), up to a
        # bound that keeps the process within its file handles
        in_flight = int(level.value) if level.mode == "concurrency" else OPEN_LOOP_CONNECTIONS
        client = make_client(in_flight)
        try:
            if warmup:
                origin = time.perf_counter()
                n_w = (
                    int(level.value) if level.mode == "concurrency" else max(1, min(warmup, int(level.value)))
                )
                await _closed(client, prompts, n_w, _until(options, warmup), lambda s: None, stop, origin)
            origin = time.perf_counter()
            if level.mode == "concurrency":
                await _closed(client, prompts, int(level.value), _until(options), out.put, stop, origin)
            else:
                await _open(client, prompts, level.value, seed, _until(options), out.put, stop, origin)
        finally:
            await client.aclose()

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as e:  # handed to the caller's thread
            state["error"] = e
        finally:
            out.put(_DONE)

    thread = threading.Thread(target=target, name="tunegate-load", daemon=True)
    thread.start()
    batch: list[Sent] = []
    last = time.monotonic()
    try:
        while True:
            try:
                item = out.get(timeout=0.1)
            except queue.Empty:
                item = None
            if item is _DONE:
                break
            if item is not None:
                batch.append(item)
            if batch and (len(batch) >= batch_rows or time.monotonic() - last >= batch_seconds):
                yield batch
                batch, last = [], time.monotonic()
        thread.join()
        if "error" in state:
            raise state["error"]
        if batch:
            yield batch
    finally:
        if thread.is_alive():  # interrupted: stop sending, cancel what is in flight
            stop.set()
            loop = state.get("loop")
            if loop is not None:
                try:
                    loop.call_soon_threadsafe(_cancel_all, loop)
                except RuntimeError:  # the loop closed meanwhile
                    pass
            thread.join(10)


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    for task in asyncio.all_tasks(loop):
        task.cancel()
