"""The HTTP transport shared by the `openai:` backend and the endpoint judges.

One policy for every OpenAI-compatible call: bounded concurrency, a per-call timeout,
retries of 429 / 5xx / timeouts / connection errors with exponential back-off and full jitter
that honours `Retry-After` (seconds, HTTP date or `retry-after-ms`), and a retry budget shared by
every call of one client, so a dead server costs seconds, not hours. The API key is read from the
environment at call time, registered as a secret (scrubbed from all that is stored or logged) and
never returned in an error.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import Field

from harness.config import Strict
from harness.errors import UserError
from harness.http_limits import ReplyRefused, limited_transport
from harness.limits import HTTP_SECONDS
from harness.secrets import register_secret_env, scrub

T = TypeVar("T")

RETRYABLE = {408, 409, 425, 429}
"""Statuses worth another try besides every 5xx."""


class HttpPolicy(Strict):
    """How hard to try one endpoint."""

    max_concurrency: int = Field(8, ge=1, le=512)
    timeout: float = Field(60.0, gt=0)
    """Seconds per HTTP read (connect, each chunk of the reply)."""
    deadline: float | None = Field(None, gt=0)
    """Seconds per HTTP call in total, the whole reply included (a server that trickles a byte
    at a time stops here); default $TUNEGATE_MAX_HTTP_SECONDS, else 900."""
    max_retries: int = Field(4, ge=0, le=20)
    """Retries per request for 429, 5xx, timeouts and connection errors."""
    retry_budget: int = Field(200, ge=0)
    """Retries allowed across all requests of one client (one run)."""
    backoff_base: float = Field(0.5, ge=0)
    backoff_max: float = Field(30.0, ge=0)
    max_retry_after: float = Field(120.0, ge=0)
    """A 429 asking to wait longer than this is an error, not a wait."""


class EndpointGone(UserError):
    """A server that answered before now refuses every connection (it died or was stopped):
    raised out of `call` by a transport made with `stop_when_gone`, so the run stops at once
    instead of spending every request's retries on a dead port."""


GONE_AFTER = 3
"""Refused connections in a row, after at least one answer, that mean the server is gone."""


class ReplicaUnreachable(Exception):
    """Raised out of `call` by a transport made with `failover` when its server did not answer
    (connection refused or reset, a timeout): the replica pool (harness.models.replicas) sends
    the request to another replica instead of retrying this one."""

    def __init__(self, error: str, *, refused: bool, attempts: int) -> None:
        super().__init__(error)
        self.error, self.refused, self.attempts = error, refused, attempts


class MalformedReply(Exception):
    """Raised by a request's `make` when a 200 reply is unusable (garbage, no choices): retried
    like a 5xx, then reported as the request's error."""


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """One request after retries: the value, or an error (with the HTTP status when there was
    one, and the response body) — never both."""

    value: T | None
    error: str | None
    status: int | None
    body: str | None
    attempts: int
    latency_s: float


class Transport:
    """Calls to one base URL; async core (`call`), the caller owns the event loop."""

    def __init__(
        self,
        base_url: str,
        api_key_env: str | None,
        policy: HttpPolicy,
        *,
        what: str = "endpoint",
        stop_when_gone: bool = False,
        failover: bool = False,
    ):
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        self.policy = policy
        self.what = what
        self.calls = 0
        """HTTP requests made (retries included)."""
        self.retries_left = policy.retry_budget
        self.stop_when_gone = stop_when_gone
        self.answered = 0
        """Replies received (any status): the server was there."""
        self.refused_in_row = 0
        self.failover = failover
        """A replica: no answer (refused, reset, timed out) raises ReplicaUnreachable at once."""
        self._per_loop: dict[int, tuple[Any, asyncio.Semaphore]] = {}
        if api_key_env:
            register_secret_env(api_key_env)

    def key(self) -> str:
        return os.environ.get(self.api_key_env, "") if self.api_key_env else ""

    def scrub(self, text: str | None) -> str | None:
        """`text` without the key (or any other registered secret)."""
        key = self.key()
        if text and len(key) >= 4:
            text = text.replace(key, "***")
        return scrub(text)

    def session(self) -> tuple[Any, asyncio.Semaphore]:
        """The SDK client and semaphore of the running loop (both belong to one loop)."""
        loop_id = id(asyncio.get_running_loop())
        if loop_id not in self._per_loop:
            import openai

            oai = openai.AsyncOpenAI(
                base_url=self.base_url,
                api_key=self.key() or "no-key",
                timeout=self.policy.timeout,
                max_retries=0,  # we retry ourselves: jitter, Retry-After, a shared budget
                # replies bounded in size (after decompression) and type: harness.http_limits
                http_client=openai.DefaultAsyncHttpxClient(transport=limited_transport()),
            )
            self._per_loop[loop_id] = (oai, asyncio.Semaphore(self.policy.max_concurrency))
        return self._per_loop[loop_id]

    async def aclose(self) -> None:
        entry = self._per_loop.pop(id(asyncio.get_running_loop()), None)
        if entry is not None:
            await entry[0].close()

    def take_retry(self) -> bool:
        if self.retries_left <= 0:
            return False
        self.retries_left -= 1
        return True

    def delay(self, retry: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after * random.uniform(1.0, 1.1)  # never sooner than asked
        cap = min(self.policy.backoff_max, self.policy.backoff_base * 2**retry)
        return random.uniform(cap / 2, cap)  # jitter keeps concurrent retries from re-colliding

    async def call(
        self,
        make: Callable[[Any], Awaitable[T]],
        *,
        give_up_on: Callable[[int], bool] | None = None,
    ) -> Outcome[T]:
        """`await make(sdk_client)` under the semaphore, retried per the policy. A status for
        which `give_up_on(status)` is true (default: any non-retryable 4xx) returns at once."""
        import openai

        oai, sem = self.session()
        t0 = time.perf_counter()
        attempts = retries = 0
        cfg = self.policy
        deadline = cfg.deadline or HTTP_SECONDS.value()
        deadline_text = f"its deadline of {deadline:g} s" if cfg.deadline else HTTP_SECONDS.named()
        async with sem:
            while True:
                attempts += 1
                self.calls += 1
                status, body, retry_after = None, None, None
                try:
                    value = await asyncio.wait_for(make(oai), deadline)
                except TimeoutError:
                    error = f"{self.what} call took longer than {deadline_text}"
                    self._fail_over(error, attempts, refused=False)
                except openai.APIStatusError as e:
                    status, body = e.status_code, self.scrub(body_text(e))  # masked before it is cut
                    self.answered, self.refused_in_row = self.answered + 1, 0
                    error = f"HTTP {status} from {self.what} {self.base_url}: {short(body)}"
                    stop = give_up_on(status) if give_up_on else not (status in RETRYABLE or status >= 500)
                    if stop:
                        return self._outcome(None, error, status, body, attempts, t0)
                    retry_after = retry_after_seconds(e.response.headers)
                except MalformedReply as e:
                    error = f"malformed reply from {self.what} {self.base_url}: {e}"
                except ValueError as e:  # the SDK's JSON decoding of a 200 body that is not JSON
                    error = f"malformed reply from {self.what} {self.base_url}: {type(e).__name__}: {e}"
                except openai.APITimeoutError:
                    error = f"{self.what} call timed out after {cfg.timeout:g} s"
                    self._fail_over(error, attempts, refused=False)
                except ReplyRefused as e:  # too large, or not JSON: the same again on a retry
                    error = f"reply from {self.what} {self.base_url} refused: {e}"
                    return self._outcome(None, error, None, None, attempts, t0)
                except openai.APIConnectionError as e:
                    error = f"cannot reach {self.what} {self.base_url}: {e.__cause__ or e}"
                    self._check_gone(e)
                    self._fail_over(error, attempts, refused=_refused(e))
                else:
                    self.answered, self.refused_in_row = self.answered + 1, 0
                    return self._outcome(value, None, None, None, attempts, t0)
                if retry_after is not None and retry_after > cfg.max_retry_after:
                    error = f"{error}; server asked to wait {retry_after:g} s"
                    return self._outcome(None, error, status, body, attempts, t0)
                if retries >= cfg.max_retries:
                    error = f"{error} (gave up after {attempts} attempts)"
                    return self._outcome(None, error, status, body, attempts, t0)
                if not self.take_retry():
                    error = f"{error} (retry budget of {cfg.retry_budget} exhausted)"
                    return self._outcome(None, error, status, body, attempts, t0)
                await asyncio.sleep(self.delay(retries, retry_after))
                retries += 1

    def _fail_over(self, error: str, attempts: int, *, refused: bool) -> None:
        if self.failover:
            raise ReplicaUnreachable(self.scrub(error) or error, refused=refused, attempts=attempts)

    def _check_gone(self, e: BaseException) -> None:
        """Count a refused connection; raise EndpointGone at GONE_AFTER in a row after an answer."""
        if not _refused(e):
            return
        self.refused_in_row += 1
        if self.stop_when_gone and self.answered and self.refused_in_row >= GONE_AFTER:
            raise EndpointGone(
                f"{self.what} {self.base_url} stopped accepting connections (refused "
                f"{self.refused_in_row} times in a row after {self.answered} answers)"
            )

    def _outcome(
        self, value: Any, error: str | None, status: int | None, body: str | None, attempts: int, t0: float
    ) -> Outcome[Any]:
        return Outcome(value, self.scrub(error), status, self.scrub(body), attempts, time.perf_counter() - t0)


def _refused(e: BaseException) -> bool:
    """Whether a connection error is 'connection refused' (nothing listens on the port)."""
    seen: BaseException | None = e
    for _ in range(8):  # the SDK's error ← httpx.ConnectError ← httpcore ← ConnectionRefusedError
        if seen is None:
            return False
        if isinstance(seen, ConnectionRefusedError) or "connection refused" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds from Retry-After (seconds or an HTTP date) or retry-after-ms; None if absent."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def body_text(e: Any) -> str:
    try:
        return e.response.text
    except Exception:  # a streamed or closed body: the SDK's message is what we have
        return str(e)


def short(text: str | None, n: int = 300) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[:n] + "…"
