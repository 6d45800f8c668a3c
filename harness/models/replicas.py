"""Replicas behind one `openai:MODEL@URL1,URL2,…` spec: several servers of the same model.

Requests go to the live replica with the fewest outstanding requests (vLLM's and SGLang's
routers do the same: a slow replica gets less work, not an equal share). A replica that stops
answering — connection refused, reset, or `DOWN_AFTER` timeouts in a row — leaves the rotation
for the rest of the run, and each request it failed is sent to another replica; such a request
counts as failed only when no replica answers it. The run stops (EndpointGone, resumable) only
when every replica is gone.

Start-up (`check_same_model`) refuses replicas that do not report the same model: the served id
and the rest of its /v1/models entry (vLLM's `root`, `max_model_len`, …) must agree, since the
cache treats their outputs as one model's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from harness.errors import UserError
from harness.secrets import scrub
from harness.transport import EndpointGone, HttpPolicy, Outcome, ReplicaUnreachable, Transport

log = logging.getLogger(__name__)

T = TypeVar("T")

DOWN_AFTER = 3
"""Failures in a row without an answer (timeouts, resets) that take a replica out of rotation;
a refused connection takes it out at once (nothing listens on the port any more)."""


class Replica:
    """One server of the pool and what the pool knows about it."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.outstanding = 0
        self.failed_in_row = 0
        self.down: str | None = None
        """Why it left the rotation (None: in rotation)."""
        self.served = 0


class ReplicaPool:
    """The `Transport` interface (`call`, `calls`, `aclose`, `scrub`, …) over several replicas."""

    def __init__(
        self, base_urls: Sequence[str], api_key_env: str | None, policy: HttpPolicy, *, what: str = "endpoint"
    ) -> None:
        if len(base_urls) < 2:
            raise ValueError("a replica pool needs at least two base URLs")
        self.replicas = [
            Replica(Transport(u, api_key_env, policy, what=f"{what} replica", failover=True))
            for u in base_urls
        ]
        self.policy = policy
        self.what = what
        self.api_key_env = api_key_env

    # -- what callers of a single Transport read --------------------------------------------
    @property
    def base_url(self) -> str:
        """The first replica (what `tunegate load` drives: one server's latency)."""
        return self.replicas[0].transport.base_url

    @property
    def base_urls(self) -> list[str]:
        return [r.transport.base_url for r in self.replicas]

    @property
    def calls(self) -> int:
        return sum(r.transport.calls for r in self.replicas)

    def key(self) -> str:
        return self.replicas[0].transport.key()

    def scrub(self, text: str | None) -> str | None:
        return self.replicas[0].transport.scrub(text)

    async def aclose(self) -> None:
        for r in self.replicas:
            await r.transport.aclose()

    def served(self) -> dict[str, int]:
        """Requests answered per replica URL (credentials masked)."""
        return {scrub(r.transport.base_url): r.served for r in self.replicas}

    # -- the call ---------------------------------------------------------------------------
    def _pick(self, tried: set[int]) -> int | None:
        """The live replica with the fewest outstanding requests, preferring one this request
        has not failed on; None when every replica is down."""
        live = [i for i, r in enumerate(self.replicas) if r.down is None]
        if not live:
            return None
        fresh = [i for i in live if i not in tried] or live
        return min(fresh, key=lambda i: (self.replicas[i].outstanding, i))

    async def call(
        self,
        make: Callable[[Any], Awaitable[T]],
        *,
        give_up_on: Callable[[int], bool] | None = None,
    ) -> Outcome[T]:
        """`make` on one replica; on no answer, on another, up to `max_retries + 1` replicas'
        tries in all (a request that times out everywhere is an error, not an endless loop)."""
        tried: set[int] = set()
        attempts = hops = 0
        t0 = time.perf_counter()
        last = ""
        while True:
            i = self._pick(tried)
            if i is None:
                raise EndpointGone(self._all_gone())
            rep = self.replicas[i]
            rep.outstanding += 1
            try:
                out = await rep.transport.call(make, give_up_on=give_up_on)
            except ReplicaUnreachable as e:
                attempts += e.attempts
                last = e.error
                tried.add(i)
                self._failed(rep, e)
                hops += 1
                if hops > self.policy.max_retries:
                    error = f"{last} (no replica answered: gave up after {hops} tries)"
                    return Outcome(None, error, None, None, attempts, time.perf_counter() - t0)
                continue
            finally:
                rep.outstanding -= 1
            rep.failed_in_row = 0
            rep.served += out.error is None
            if not attempts:
                return out
            total = attempts + out.attempts
            return Outcome(out.value, out.error, out.status, out.body, total, time.perf_counter() - t0)

    def _failed(self, rep: Replica, e: ReplicaUnreachable) -> None:
        rep.failed_in_row += 1
        if rep.down is None and (e.refused or rep.failed_in_row >= DOWN_AFTER):
            rep.down = e.error
            left = sum(r.down is None for r in self.replicas)
            log.warning(
                "%s replica %s left the rotation (%s); %d of %d left",
                self.what,
                scrub(rep.transport.base_url),
                e.error,
                left,
                len(self.replicas),
            )

    def _all_gone(self) -> str:
        urls = ", ".join(scrub(r.transport.base_url) for r in self.replicas)
        return f"every replica of the {self.what} stopped answering ({urls})"


def make_transport(
    base_urls: Sequence[str], api_key_env: str | None, policy: HttpPolicy, *, what: str = "endpoint"
) -> Transport | ReplicaPool:
    """One URL: the plain transport, which stops the run when its server is gone (as before);
    several: a pool, which stops it only when all are."""
    if len(base_urls) == 1:
        return Transport(base_urls[0], api_key_env, policy, what=what, stop_when_gone=True)
    return ReplicaPool(base_urls, api_key_env, policy, what=what)


def check_same_model(raw: str, model: str, entries: Sequence[tuple[str, dict[str, Any] | None]]) -> None:
    """Refuse replicas whose /v1/models entries for `model` differ (`entries`: (url, entry with
    the volatile fields removed), first replica first)."""
    first_url, first = entries[0]
    for url, entry in entries[1:]:
        if entry == first:
            continue
        a, b = first or {}, entry or {}
        fields = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        diff = "; ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in fields[:4])
        if first is None or entry is None:
            diff = "one lists no entry for the model, the other does"
        raise UserError(
            scrub(
                f"model spec '{raw}': the replicas {first_url} and {url} do not report the same "
                f"model '{model}' ({diff}); replicas behind one spec must serve the same weights"
            ),
            field="model",
        )
