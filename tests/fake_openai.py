"""A misbehaving OpenAI-compatible server on loopback: the only fake in the judge tests.

A real aiohttp server in a background thread. Each request takes the next behaviour from
`script` (then `default`): ok, 429 (with Retry-After), 500, hang (past the client's timeout),
garbage (prose, no JSON), out_of_range (valid JSON, impossible scores), echo_auth (garbage
that quotes the Authorization header, to prove keys are scrubbed), badjson (HTTP 200 whose body is
not JSON), and the hostile ones of `_hostile` (int_content, list_content, huge, gzip_bomb,
500_echo, html, trickle). `latency` delays every reply. `/v1/completions` serves the same behaviours for the
`openai:` backend; its 'ok' reply ignores `echo` (logprobs of generated tokens only, as Ollama).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class FakeState:
    script: list[str] = field(default_factory=list)
    default: str = "ok"
    latency: float = 0.0
    retry_after: str = "1"
    reject_json_schema: bool = False
    models: str = "ok"
    """How GET /models answers: ok, or one of the hostile behaviours (html, huge, trickle, …)."""
    model_entries: list[dict[str, Any]] | None = None
    """What an 'ok' GET /models lists (default: one model, `fake`): a server that claims to serve
    another model, or the same id from another root (the replica tests)."""
    reply: Callable[[dict[str, Any]], str] | None = None
    """Content for 'ok' replies; default: a mid-range answer built from the request's schema."""
    requests: list[dict[str, Any]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    error_rate: float = 0.0
    """Share of requests answered HTTP 500 (exactly: request i fails when floor((i+1)·rate) >
    floor(i·rate)), after `latency`, streamed or not."""
    stream_chunks: int = 4
    """`stream: true` requests (issue #26): text events per reply."""
    chunk_delay: float = 0.0
    """Seconds between streamed text events (`latency` is the wait before the first)."""
    cut_from: int | None = None
    """Streamed replies to request `cut_from` and later end with [DONE] and no finish_reason (as
    llama-cpp-python's server cuts a stream off when the next request arrives)."""
    n_seen: int = 0
    slots: int = 0
    """Requests served at once (the rest wait, as on a server with a fixed batch); 0: no limit.
    A replica benchmark's server: throughput bound by the server, not by the client."""
    _slots: asyncio.Semaphore | None = None


def answer_for(schema: dict[str, Any] | None, out_of_range: bool = False) -> dict[str, Any]:
    """A reply that satisfies a flat object schema (or breaks its ranges on purpose)."""
    out: dict[str, Any] = {}
    for name, prop in ((schema or {}).get("properties") or {}).items():
        if "enum" in prop:
            out[name] = prop["enum"][0]
        elif prop.get("type") in ("integer", "number"):
            hi = prop.get("maximum", 4)
            out[name] = hi + 7 if out_of_range else (hi + 1) // 2
        else:
            out[name] = "fine"
    return out or {"score": 99 if out_of_range else 2, "rationale": "fine"}


class FakeOpenAI:
    """Start with `with FakeOpenAI() as srv:`; `srv.base_url` ends in /v1."""

    def __init__(self) -> None:
        self.state = FakeState()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reset(self, **kw: Any) -> FakeState:
        self.state = FakeState(**kw)
        return self.state

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._closing.set)
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _start(self) -> None:
        self._closing = asyncio.Event()
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def _models(self, request: web.Request) -> web.StreamResponse:
        hostile = await self._hostile(self.state.models, request)
        if hostile is not None:
            return hostile
        entries = self.state.model_entries or [{"id": "fake", "object": "model"}]
        return web.json_response({"object": "list", "data": entries})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        st = self.state
        body = await request.json()
        st.requests.append({"body": body, "auth": request.headers.get("Authorization", "")})
        st.times.append(time.monotonic())
        behaviour = st.script.pop(0) if st.script else st.default
        if st.slots:
            if st._slots is None:
                st._slots = asyncio.Semaphore(st.slots)
            async with st._slots:
                return await self._answer(request, body, behaviour)
        return await self._answer(request, body, behaviour)

    async def _answer(self, request: web.Request, body: dict[str, Any], behaviour: str) -> web.StreamResponse:
        st = self.state
        st.in_flight += 1
        st.max_in_flight = max(st.max_in_flight, st.in_flight)
        try:
            if st.latency:
                await asyncio.sleep(st.latency)
            i, st.n_seen = st.n_seen, st.n_seen + 1
            if st.error_rate and int((i + 1) * st.error_rate) > int(i * st.error_rate):
                return web.json_response({"error": {"message": "planned failure"}}, status=500)
            fmt = body.get("response_format") or {}
            if st.reject_json_schema and fmt.get("type") == "json_schema":
                return web.json_response({"error": {"message": "json_schema not supported"}}, status=400)
            if behaviour == "429":
                return web.json_response(
                    {"error": {"message": "rate limited"}},
                    status=429,
                    headers={"Retry-After": st.retry_after},
                )
            if behaviour == "500":
                return web.json_response({"error": {"message": "internal error"}}, status=500)
            if behaviour == "hang":  # until the client gives up, or the server stops
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), 60)
            hostile = await self._hostile(behaviour, request)
            if hostile is not None:
                return hostile
            if behaviour == "badjson":
                return web.Response(
                    text='{"choices": [ {"text": "unterminated', content_type="application/json"
                )
            if body.get("stream") and behaviour == "ok":
                return await self._stream(request, body, st.cut_from is not None and i >= st.cut_from)
            if request.path.endswith("/v1/completions"):
                text = st.reply(body) if st.reply else "a plain completion"
                return web.json_response(_text_completion(text, echo_ignored=True))
            schema = fmt.get("schema") or (fmt.get("json_schema") or {}).get("schema")
            if behaviour == "garbage":
                content = "I think the answer is quite good, maybe a seven."
            elif behaviour == "echo_auth":
                content = f"garbage; you sent {request.headers.get('Authorization', '')}"
            elif behaviour == "out_of_range":
                content = json.dumps(answer_for(schema or self._last_schema(), out_of_range=True))
            else:
                content = (
                    st.reply(body) if st.reply else json.dumps(answer_for(schema or self._last_schema()))
                )
            return web.json_response(_completion(content))
        finally:
            st.in_flight -= 1

    async def _hostile(self, behaviour: str, request: web.Request) -> web.StreamResponse | None:
        """Replies meant to exhaust or confuse the client (issue #22): bombs, floods, trickles,
        HTML and content that is not text."""
        chat = not request.path.endswith("/v1/completions")
        if behaviour in ("int_content", "list_content"):
            content: Any = 7 if behaviour == "int_content" else ["a", {"b": 1}]
            reply = _completion("x") if chat else _text_completion("x", echo_ignored=False)
            if chat:
                reply["choices"][0]["message"]["content"] = content
            else:
                reply["choices"][0]["text"] = content
            return web.json_response(reply)
        if behaviour == "huge":  # a valid reply of ~64 MB
            text = "x" * (64 * 1024 * 1024)
            return web.json_response(_completion(text) if chat else _text_completion(text, False))
        if behaviour == "gzip_bomb":  # ~200 KB on the wire, 200 MB of zeros once inflated
            import zlib

            comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            zero = b"0" * (1024 * 1024)
            body = b"".join(comp.compress(zero) for _ in range(200)) + comp.flush()
            return web.Response(
                body=body, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}
            )
        if behaviour == "500_echo":  # an error body that repeats whatever `reply` makes of the request
            text = self.state.reply(await request.json()) if self.state.reply else ""
            return web.json_response({"error": {"message": text}}, status=500)
        if behaviour == "html":
            return web.Response(text="<html><body>login</body></html>", content_type="text/html")
        if behaviour == "trickle":  # one byte every 0.5 s, forever (each read is quick)
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            await resp.prepare(request)
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                for _ in range(600):
                    if self._closing.is_set():
                        break
                    await resp.write(b" ")
                    await asyncio.sleep(0.5)
            return resp
        return None

    async def _stream(self, request: web.Request, body: dict[str, Any], cut: bool) -> web.StreamResponse:
        """A streamed reply (server-sent events): `stream_chunks` text events `chunk_delay` apart,
        the usage event when `stream_options.include_usage` asks for it, then [DONE]."""
        st = self.state
        chat = not request.path.endswith("/v1/completions")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)

        def event(piece: str | None, finish: str | None = None) -> bytes:
            if chat:
                delta = {"role": "assistant", "content": ""} if piece is None else {"content": piece}
                choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
            else:
                choice = {"index": 0, "text": piece or "", "finish_reason": finish}
            obj = {"id": "fake-stream", "object": "chat.completion.chunk" if chat else "text_completion",
                   "created": int(time.time()), "model": "fake", "choices": [choice]}  # fmt: skip
            return b"data: " + json.dumps(obj).encode() + b"\n\n"

        if chat:
            await resp.write(event(None))
        for k in range(st.stream_chunks):
            if k and st.chunk_delay:
                await asyncio.sleep(st.chunk_delay)
            await resp.write(event(f"tok{k} "))
        if not cut:
            await resp.write(
                event("", "stop")
                if not chat
                else event(None, "stop").replace(b'"content": ""', b'"content": null')
            )
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {
                "prompt_tokens": 10,
                "completion_tokens": st.stream_chunks,
                "total_tokens": 10 + st.stream_chunks,
            }
            await resp.write(
                b"data: "
                + json.dumps({"id": "fake-stream", "choices": [], "usage": usage}).encode()
                + b"\n\n"
            )
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    def _last_schema(self) -> dict[str, Any] | None:
        for r in reversed(self.state.requests):
            fmt = r["body"].get("response_format") or {}
            schema = fmt.get("schema") or (fmt.get("json_schema") or {}).get("schema")
            if schema:
                return schema
        return None


def _completion(content: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "fake",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def _text_completion(text: str, echo_ignored: bool) -> dict[str, Any]:
    """A legacy completion; with `echo_ignored`, logprobs cover the generated token only."""
    logprobs = {
        "tokens": [text],
        "token_logprobs": [-0.5],
        "top_logprobs": [{text: -0.5}],
        "text_offset": [0],
    }
    return {
        "id": "cmpl-fake",
        "object": "text_completion",
        "created": int(time.time()),
        "model": "fake",
        "choices": [
            {
                "index": 0,
                "text": text,
                "logprobs": logprobs if echo_ignored else None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }
