"""An async client for any OpenAI-compatible chat endpoint, built for judging.

The HTTP policy — bounded concurrency, per-call timeouts, retries with exponential backoff and
full jitter that honour Retry-After, and a retry budget shared by every call of one client — is
the shared transport's (harness.transport), the same one the `openai:` backend uses.
Structured output is negotiated once per client: json_schema, then
llama.cpp's `{"type": "json_object", "schema": ...}`, then plain text parsed strictly. A reply
that never parses (or fails `validate`) comes back as an error with its raw text, never a value.

The API key is read from the environment at call time and scrubbed from every error and raw
text this module returns, so it cannot reach the store, logs or reports.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from harness.errors import UserError
from harness.secrets import register_secret_env
from harness.transport import RETRYABLE, HttpPolicy, Transport

log = logging.getLogger(__name__)

MODES = ("json_schema", "json_object", "text")
# Statuses with which servers refuse a response_format they do not support (llama.cpp: 500).
_REJECTS = {400, 422, 500, 501}


class EndpointConfig(HttpPolicy):
    """Where the judge model is served and how hard to try (the transport's policy fields:
    max_concurrency, timeout, max_retries, retry_budget, backoff_base/max, max_retry_after)."""

    base_url: str | None = None
    """OpenAI-compatible base URL, e.g. http://127.0.0.1:8080/v1 (default: $TUNEGATE_JUDGE_BASE_URL)."""
    model: str | None = None
    """Model name sent to the server (default: $TUNEGATE_JUDGE_MODEL, else 'judge')."""
    api_key_env: str = "TUNEGATE_JUDGE_API_KEY"
    """Environment variable holding the API key; the key itself is never stored."""
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
        policy = HttpPolicy(
            **{k: getattr(config, k) for k in HttpPolicy.model_fields}  # the same names, by design
        )
        self.transport = Transport(self.base_url, config.api_key_env, policy, what="judge endpoint")
        fixed = config.response_format
        self._mode_floor = 0 if fixed == "auto" else MODES.index(fixed)
        self._confirmed: set[str] = set()

    @property
    def calls(self) -> int:
        """HTTP requests made (retries and negotiation included)."""
        return self.transport.calls

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
        return await self._complete(call)

    async def aclose(self) -> None:
        await self.transport.aclose()

    def scrub(self, text: str | None) -> str | None:
        """`text` with the API key (and every other registered secret) replaced."""
        return self.transport.scrub(text)

    # -- internals ------------------------------------------------------------------------
    async def _complete(self, call: Call) -> Reply:
        cfg = self.config
        t0 = time.perf_counter()
        attempts = parse_tries = 0
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
            request = self._request(call, mode)

            def stop_on(status: int, mode: str = mode) -> bool:
                # a refusal of an untried response_format is negotiated here, not retried
                return self._may_reject(mode, status) or not (status in RETRYABLE or status >= 500)

            def make(oai: Any, request: dict[str, Any] = request) -> Awaitable[Any]:
                return oai.chat.completions.create(**request)

            out = await self.transport.call(make, give_up_on=stop_on)
            attempts += out.attempts
            if out.error is not None:
                raw = out.body
                if out.status is not None and self._rejects_format(mode, out.status):
                    continue  # negotiation, not a retry: the next mode is tried at once
                return done(None, out.error, mode)
            resp = out.value
            assert resp is not None, "an Outcome without an error has its value"
            choice = resp.choices[0] if resp.choices else None
            content = (choice.message.content if choice is not None else None) or ""
            if not isinstance(content, str):  # any JSON can come back there: an error row, not a crash
                raw = None
                what = type(content).__name__
                return done(None, f"judge reply rejected (its content is a {what}, not text)", mode)
            raw = content
            self._confirmed.add(mode)
            try:
                value = call.validate(raw if call.schema is None else parse_json_object(raw))
            except ValueError as e:
                if parse_tries < cfg.parse_retries and self.transport.take_retry():
                    parse_tries += 1
                    continue
                return done(None, f"judge reply rejected ({e})", mode, resp.usage)
            return done(value, None, mode, resp.usage)

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

    def _may_reject(self, mode: str, status: int) -> bool:
        return (
            mode != "text"
            and mode not in self._confirmed
            and status in _REJECTS
            and self.config.response_format == "auto"
        )

    def _rejects_format(self, mode: str, status: int) -> bool:
        """A refusal of a response_format never seen working moves every later call down a mode."""
        if not self._may_reject(mode, status):
            return False
        if MODES[self._mode_floor] == mode:
            self._mode_floor += 1
            log.info(
                "%s rejected response_format %s (HTTP %s); using %s", self.base_url, mode, status, self.mode
            )
        return True


def _strict_schema(schema: Any) -> Any:
    """The schema without length limits, which OpenAI's strict mode refuses (grammars use them)."""
    if isinstance(schema, dict):
        return {k: _strict_schema(v) for k, v in schema.items() if k not in ("maxLength", "minLength")}
    if isinstance(schema, list):
        return [_strict_schema(v) for v in schema]
    return schema


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
