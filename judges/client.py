"""An async client for any OpenAI-compatible chat endpoint, built for judging.

Bounded concurrency, per-call timeouts, retries with exponential backoff and full jitter that
honour Retry-After, and a retry budget shared by every call of one client, so a dead server
costs seconds, not hours. Structured output is negotiated once per client: json_schema, then
llama.cpp's `{"type": "json_object", "schema": ...}`, then plain text parsed strictly. A reply
that never parses (or fails `validate`) comes back as an error with its raw text, never a value.

The API key is read from the environment at call time and scrubbed from every error and raw
text this module returns, so it cannot reach the store, logs or reports.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from harness.config import Strict
from harness.errors import UserError
from harness.secrets import register_secret_env

log = logging.getLogger(__name__)

MODES = ("json_schema", "json_object", "text")
# Statuses with which servers refuse a response_format they do not support (llama.cpp: 500).
_REJECTS = {400, 422, 500, 501}
_RETRYABLE = {408, 409, 425, 429}


class EndpointConfig(Strict):
    """Where the judge model is served and how hard to try."""

    base_url: str | None = None
    """OpenAI-compatible base URL, e.g. http://127.0.0.1:8080/v1 (default: $TUNEGATE_JUDGE_BASE_URL)."""
    model: str | None = None
    """Model name sent to the server (default: $TUNEGATE_JUDGE_MODEL, else 'judge')."""
    api_key_env: str = "TUNEGATE_JUDGE_API_KEY"
    """Environment variable holding the API key; the key itself is never stored."""
    max_concurrency: int = Field(8, ge=1, le=512)
    timeout: float = Field(60.0, gt=0)
    """Seconds per HTTP call."""
    max_retries: int = Field(4, ge=0, le=20)
    """Retries per judgment for 429, 5xx, timeouts and connection errors."""
    retry_budget: int = Field(200, ge=0)
    """Retries allowed across all judgments of one client (one run)."""
    backoff_base: float = Field(0.5, ge=0)
    backoff_max: float = Field(30.0, ge=0)
    max_retry_after: float = Field(120.0, ge=0)
    """A 429 asking to wait longer than this is an error, not a wait."""
    parse_retries: int = Field(1, ge=0, le=5)
    """Re-asks when a reply does not parse or is out of range."""
    max_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.0, ge=0)
    response_format: Literal["auto", "json_schema", "json_object", "text"] = "auto"
    """auto: negotiate json_schema → json_object+schema → text."""

    def model_post_init(self, context: Any) -> None:
        register_secret_env(self.api_key_env)  # whatever echoes the key is scrubbed before storing

    def resolved_base_url(self) -> str:
        url = self.base_url or os.environ.get("TUNEGATE_JUDGE_BASE_URL")
        if not url:
            raise UserError(
                "the judge needs an endpoint: set judge.endpoint.base_url or $TUNEGATE_JUDGE_BASE_URL",
                field="judge.endpoint.base_url",
            )
        return url.rstrip("/")

    def resolved_model(self) -> str:
        return self.model or os.environ.get("TUNEGATE_JUDGE_MODEL") or "judge"


@dataclass(frozen=True)
class Reply:
    """One judgment call: the validated value, or an error with whatever raw text came back."""

    value: Any
    raw: str | None
    error: str | None
    mode: str | None
    attempts: int
    latency_s: float
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True)
class Call:
    """What to ask: chat messages, the JSON schema of the answer, and a validator that returns
    the parsed value or raises ValueError (out of range, missing keys)."""

    messages: list[dict[str, str]]
    schema: dict[str, Any] | None
    """None: a free-text answer (no response_format, no parsing; `validate` gets the text)."""
    validate: Callable[[Any], Any]


class JudgeClient:
    """Judging calls to one endpoint and model. Async core; `run_all` is the sync wrapper."""

    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        self.base_url = config.resolved_base_url()
        self.model = config.resolved_model()
        self.calls = 0
        """HTTP requests made (retries and negotiation included)."""
        self.retries_left = config.retry_budget
        fixed = config.response_format
        self._mode_floor = 0 if fixed == "auto" else MODES.index(fixed)
        self._confirmed: set[str] = set()
        self._per_loop: dict[int, tuple[Any, asyncio.Semaphore]] = {}

    @property
    def identity(self) -> str:
        """What the judge is, for cache keys and the store: model@url, never the key."""
        return f"{self.model}@{self.base_url}"

    @property
    def mode(self) -> str:
        """The structured-output mode calls use now (after any negotiation)."""
        return MODES[self._mode_floor]

    # -- public ---------------------------------------------------------------------------
    def run_all(self, calls: Sequence[Call]) -> list[Reply]:
        """Make every call, at most `max_concurrency` at a time; replies in input order."""
        return asyncio.run(self.complete_many(calls))

    async def complete_many(self, calls: Sequence[Call]) -> list[Reply]:
        try:
            return list(await asyncio.gather(*(self.complete(c) for c in calls)))
        finally:
            await self.aclose()

    async def complete(self, call: Call) -> Reply:
        """One judgment: negotiate, retry, parse, validate. Never raises for server trouble."""
        oai, sem = self._session()
        async with sem:
            return await self._complete(oai, call)

    async def aclose(self) -> None:
        entry = self._per_loop.pop(id(asyncio.get_running_loop()), None)
        if entry is not None:
            await entry[0].close()

    # -- internals ------------------------------------------------------------------------
    def _session(self) -> tuple[Any, asyncio.Semaphore]:
        # httpx clients and semaphores belong to one event loop; asyncio.run makes a new loop.
        loop_id = id(asyncio.get_running_loop())
        if loop_id not in self._per_loop:
            import openai

            oai = openai.AsyncOpenAI(
                base_url=self.base_url,
                api_key=self._key() or "no-key",
                timeout=self.config.timeout,
                max_retries=0,  # we retry ourselves: jitter, Retry-After, a shared budget
            )
            self._per_loop[loop_id] = (oai, asyncio.Semaphore(self.config.max_concurrency))
        return self._per_loop[loop_id]

    def _key(self) -> str:
        return os.environ.get(self.config.api_key_env, "")

    def scrub(self, text: str | None) -> str | None:
        """`text` with the API key (if any) replaced, so it can be stored or logged."""
        key = self._key()
        if text is None or len(key) < 4:
            return text
        return text.replace(key, "***")

    async def _complete(self, oai: Any, call: Call) -> Reply:
        import openai

        cfg = self.config
        t0 = time.perf_counter()
        attempts = retries = parse_tries = 0
        raw: str | None = None

        def done(value: Any, error: str | None, mode: str | None, usage: Any = None) -> Reply:
            return Reply(
                value,
                self.scrub(raw),
                self.scrub(error),
                mode,
                attempts,
                time.perf_counter() - t0,
                getattr(usage, "prompt_tokens", None),
                getattr(usage, "completion_tokens", None),
            )

        while True:
            mode = self.mode if call.schema is not None else "text"
            attempts += 1
            self.calls += 1
            error, retry_after = None, None
            try:
                resp = await oai.chat.completions.create(**self._request(call, mode))
            except openai.APIStatusError as e:
                raw = _body_text(e)
                if self._rejects_format(mode, e.status_code):
                    continue  # negotiation, not a retry: the next mode is tried at once
                error = f"HTTP {e.status_code} from judge endpoint: {_short(raw)}"
                if not (e.status_code in _RETRYABLE or e.status_code >= 500):
                    return done(None, error, mode)
                retry_after = _retry_after(e.response.headers)
            except openai.APITimeoutError:
                error = f"judge call timed out after {cfg.timeout:g} s"
            except openai.APIConnectionError as e:
                error = f"cannot reach judge endpoint {self.base_url}: {e.__cause__ or e}"
            else:
                choice = resp.choices[0] if resp.choices else None
                raw = (choice.message.content if choice is not None else None) or ""
                self._confirmed.add(mode)
                try:
                    value = call.validate(raw if call.schema is None else parse_json_object(raw))
                except ValueError as e:
                    if parse_tries < cfg.parse_retries and self._take_retry():
                        parse_tries += 1
                        continue
                    return done(None, f"judge reply rejected ({e})", mode, resp.usage)
                return done(value, None, mode, resp.usage)
            # A transient failure: wait and retry while this call and the run have retries left.
            if retry_after is not None and retry_after > cfg.max_retry_after:
                return done(None, f"{error}; server asked to wait {retry_after:g} s", mode)
            if retries >= cfg.max_retries:
                return done(None, f"{error} (gave up after {attempts} attempts)", mode)
            if not self._take_retry():
                return done(None, f"{error} (retry budget of {cfg.retry_budget} exhausted)", mode)
            await asyncio.sleep(self._delay(retries, retry_after))
            retries += 1

    def _request(self, call: Call, mode: str) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": call.messages,
            "max_tokens": self.config.max_tokens,
            "temperature": self.config.temperature,
        }
        if mode == "json_schema":
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "judgment", "schema": _strict_schema(call.schema), "strict": True},
            }
        elif mode == "json_object":  # llama.cpp's form: the schema becomes a grammar
            kwargs["response_format"] = {"type": "json_object", "schema": call.schema}
        return kwargs

    def _rejects_format(self, mode: str, status: int) -> bool:
        """A refusal of a response_format never seen working moves every later call down a mode."""
        if mode == "text" or mode in self._confirmed or status not in _REJECTS:
            return False
        if self.config.response_format != "auto":
            return False
        if MODES[self._mode_floor] == mode:
            self._mode_floor += 1
            log.info(
                "%s rejected response_format %s (HTTP %s); using %s", self.base_url, mode, status, self.mode
            )
        return True

    def _take_retry(self) -> bool:
        if self.retries_left <= 0:
            return False
        self.retries_left -= 1
        return True

    def _delay(self, retry: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after * random.uniform(1.0, 1.1)  # never sooner than asked
        cap = min(self.config.backoff_max, self.config.backoff_base * 2**retry)
        return random.uniform(cap / 2, cap)  # jitter keeps concurrent retries from re-colliding


def _strict_schema(schema: Any) -> Any:
    """The schema without length limits, which OpenAI's strict mode refuses (grammars use them)."""
    if isinstance(schema, dict):
        return {k: _strict_schema(v) for k, v in schema.items() if k not in ("maxLength", "minLength")}
    if isinstance(schema, list):
        return [_strict_schema(v) for v in schema]
    return schema


def _retry_after(headers: Any) -> float | None:
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
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def _body_text(e: Any) -> str:
    try:
        return e.response.text
    except Exception:  # a streamed or closed body: the SDK's message is what we have
        return str(e)


def _short(text: str | None, n: int = 300) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[:n] + "…"


_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)


def parse_json_object(text: str) -> dict[str, Any]:
    """The one JSON object in a reply: the whole text, a ```json fence, or a single object with
    prose around it. Anything else (no object, two objects, invalid JSON) is a ValueError."""
    s = text.strip()
    fence = _FENCE.match(s)
    if fence:
        s = fence.group(1)
    try:
        obj = json.loads(s)
    except json.JSONDecodeError:
        start = s.find("{")
        if start < 0:
            raise ValueError("no JSON object in the reply") from None
        try:
            obj, end = json.JSONDecoder().raw_decode(s, start)
        except json.JSONDecodeError as e:
            raise ValueError(f"invalid JSON ({e.msg} at column {e.colno})") from None
        if "{" in s[end:]:
            raise ValueError("more than one JSON object in the reply") from None
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    return obj
