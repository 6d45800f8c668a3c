"""One streamed request on the wire, timed: TTFT, inter-token latencies, end-to-end latency.

The load driver does not go through `harness.transport`: that transport reads a reply whole
(to bound it) and retries, which would hide both the first token and a failure's latency. Here
each request is sent once over a pooled keep-alive connection (`wire.py`) and read chunk by
chunk. The transport's policy still applies where it does not distort the measurement: the key
comes from the environment (never stored, scrubbed from errors), the read timeout and the
whole-call deadline are the endpoint's, and a reply larger than `harness.limits.HTTP_BYTES`
stops being read.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from harness.limits import HTTP_BYTES, HTTP_SECONDS
from harness.suite import Request

MAX_STOPS = 4  # as the openai: backend: the API takes at most 4 stop strings


@dataclass
class Timed:
    """What one request measured. A failed request has `error` set and no latencies (never 0)."""

    sent_s: float
    """When it was sent, in seconds from the level's start."""
    e2e_s: float | None = None
    ttft_s: float | None = None
    itl_s: list[float] = field(default_factory=list)
    """Gaps between successive chunks that carried text."""
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    tokens_from: str | None = None
    """usage | tokenizer | chunks: where output_tokens came from."""
    status: int | None = None
    error: str | None = None
    failed_after_s: float | None = None
    """For a failed request: how long until it failed (kept apart from the latencies)."""
    chunks: int = 0
    """Streamed events that carried text."""
    text: str = ""


def request_body(model: str, request: Request, params: dict[str, Any], usage: bool) -> tuple[str, dict]:
    """(path, JSON body) of the streamed request for a prepared `request`, with the suite's
    generation parameters (the same fields the `openai:` backend sends)."""
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": int(params.get("max_new_tokens", 128)),
        "temperature": float(params.get("temperature", 0.0)),
        "stream": True,
    }
    if body["temperature"] > 0:
        body["top_p"] = float(params.get("top_p", 1.0))
    stop = list(params.get("stop") or [])[:MAX_STOPS]
    if stop:
        body["stop"] = stop
    if usage:
        body["stream_options"] = {"include_usage": True}
    if request.messages is not None:
        body["messages"] = list(request.messages)
        return "/chat/completions", body
    body["prompt"] = request.prompt or ""
    return "/completions", body


class StreamClient:
    """Streamed requests to one base URL, all on the running event loop."""

    def __init__(
        self,
        base_url: str,
        key: str,
        *,
        timeout: float,
        max_connections: int,
        scrub: Any,
        count_tokens: Any = None,
    ) -> None:
        from harness.load.wire import WirePool

        self.base_url = base_url.rstrip("/")
        headers = {"Accept": "text/event-stream", "User-Agent": "tunegate-load"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self.pool = WirePool(
            self.base_url,
            headers,
            timeout=timeout,
            connect_timeout=min(timeout, 10.0),
            max_connections=max_connections,
        )
        self.scrub = scrub
        self.count_tokens = count_tokens
        self.deadline = HTTP_SECONDS.value()
        self.cap = HTTP_BYTES.int_value()

    async def aclose(self) -> None:
        await self.pool.aclose()

    async def send(self, path: str, body: dict[str, Any], origin: float) -> Timed:
        """Send once (no retry: a retried request would hide its latency) and time it."""
        t0 = time.perf_counter()
        out = Timed(sent_s=t0 - origin)
        try:
            await asyncio.wait_for(self._stream(path, body, t0, out), self.deadline)
        except TimeoutError:
            out.error = f"the request took longer than {HTTP_SECONDS.named()}"
        except Exception as e:  # a connection refused, a read timeout, a broken stream: its error row
            out.error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        t1 = time.perf_counter()
        if out.error is not None:
            out.error = self.scrub(out.error)[:500]
            out.failed_after_s = t1 - t0
            out.e2e_s = out.ttft_s = None
            out.itl_s = []
            return out
        out.e2e_s = t1 - t0
        if out.output_tokens is None:
            if self.count_tokens is not None:
                out.output_tokens, out.tokens_from = int(self.count_tokens(out.text)), "tokenizer"
            else:
                out.output_tokens, out.tokens_from = out.chunks, "chunks"
        return out

    async def _stream(self, path: str, body: dict[str, Any], t0: float, out: Timed) -> None:
        resp = await self.pool.post(path, body)
        try:
            out.status = resp.status
            if resp.status >= 400 or not resp.headers.get("content-type", "").startswith("text/event-stream"):
                await self._whole(resp, "messages" in body, t0, out)
            else:
                await self._events(resp, "messages" in body, t0, out)
        finally:
            resp.discard()  # a reply left unread closes its connection

    async def _whole(self, resp: Any, chat: bool, t0: float, out: Timed) -> None:
        """An error reply, or a server that ignored `stream: true` and sent one JSON object."""
        raw = b""
        async for part in resp.chunks():
            raw += part
            if len(raw) > self.cap:
                out.error = f"the reply is larger than {HTTP_BYTES.named()}"
                return
        if resp.status >= 400:
            text = raw[:2000].decode("utf-8", "replace")
            out.error = f"HTTP {resp.status}: {' '.join(text.split())[:300]}"
            return
        event = _json(raw)
        piece = _piece(event, chat) if isinstance(event, dict) else None
        if piece is None or not isinstance(event, dict):
            out.error = "the reply is neither server-sent events nor a completion"
            return
        out.ttft_s = time.perf_counter() - t0  # all at once: TTFT is the whole reply's time
        out.chunks, out.text = 1, piece
        usage = event.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
            out.output_tokens, out.tokens_from = usage["completion_tokens"], "usage"
            out.prompt_tokens = usage.get("prompt_tokens")

    async def _events(self, resp: Any, chat: bool, t0: float, out: Timed) -> None:
        last: float | None = None
        parts: list[str] = []
        finished = False
        size, buf = 0, b""
        async for chunk in resp.chunks():
            size += len(chunk)
            if size > self.cap:
                out.error = f"the reply is larger than {HTTP_BYTES.named()}"
                return
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                data = _sse_data(line)
                if data is None or data == b"[DONE]":
                    continue
                event = _json(data)
                if not isinstance(event, dict):
                    out.error = f"a streamed event is not a JSON object: {data[:120]!r}"
                    return
                if event.get("error"):
                    err = event["error"]
                    msg = err.get("message") if isinstance(err, dict) else err
                    out.error = f"error event in the stream: {str(msg)[:300]}"
                    return
                usage = event.get("usage")
                if isinstance(usage, dict):
                    if isinstance(usage.get("prompt_tokens"), int):
                        out.prompt_tokens = usage["prompt_tokens"]
                    if isinstance(usage.get("completion_tokens"), int):
                        out.output_tokens, out.tokens_from = usage["completion_tokens"], "usage"
                finished = finished or _finished(event)
                piece = _piece(event, chat)
                if piece:
                    now = time.perf_counter()
                    if last is None:
                        out.ttft_s = now - t0
                    else:
                        out.itl_s.append(now - last)
                    last = now
                    out.chunks += 1
                    parts.append(piece)
        if not finished:  # llama-cpp-python's server, for one, cuts a stream when another request comes
            out.error = f"the stream ended without a finish_reason after {out.chunks} text events (cut off)"
            return
        out.text = "".join(parts)


def _sse_data(line: bytes) -> bytes | None:
    line = line.strip()
    if not line.startswith(b"data:"):
        return None
    return line[5:].strip()


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None


def _finished(event: dict[str, Any]) -> bool:
    """Whether an event closes its choice (a finish_reason): a stream without one was cut off."""
    choices = event.get("choices")
    if not isinstance(choices, list):
        return False
    return any(isinstance(c, dict) and c.get("finish_reason") for c in choices)


def _piece(event: Any, chat: bool) -> str | None:
    """The text an event carries (chat: choices[0].delta.content, else choices[0].text)."""
    try:
        choice = event["choices"][0]
    except (KeyError, IndexError, TypeError):
        return None
    if not isinstance(choice, dict):
        return None
    if chat:
        delta = choice.get("delta") or choice.get("message") or {}
        value = delta.get("content") if isinstance(delta, dict) else None
    else:
        value = choice.get("text")
    return value if isinstance(value, str) and value else None
