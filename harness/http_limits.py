"""An HTTP transport for the OpenAI SDK that bounds what a server can send back.

A server tunegate does not control can answer a 204 KB gzip body that expands to 200 MB, a
30 MB reply, or an HTML page with status 200. The SDK would decompress and parse all of it. This
transport (under the SDK's httpx client) reads each reply itself: it asks only for gzip/deflate,
decompresses chunk by chunk and stops past `harness.limits.HTTP_BYTES` (or when the reply is
still arriving after `HTTP_SECONDS`), and refuses a successful reply that is not JSON. The
refusal is a `ReplyRefused`, which `harness.transport` turns into the request's error (not
retried: the server would send the same again).
"""

from __future__ import annotations

import time
import zlib
from typing import Any, cast

from harness.limits import HTTP_BYTES, HTTP_SECONDS

_DROP = {b"content-encoding", b"content-length", b"transfer-encoding"}


class ReplyRefused(Exception):
    """A reply past a limit or of the wrong type: the request's error, never its value."""


def limited_transport() -> Any:
    """An `httpx2.AsyncBaseTransport` over the default one, with the limits above."""
    import httpx2

    class LimitedTransport(httpx2.AsyncBaseTransport):
        def __init__(self) -> None:
            self._inner = httpx2.AsyncHTTPTransport()

        async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
            # only encodings we decode ourselves, under the cap (never brotli/zstd bombs)
            request.headers["Accept-Encoding"] = "gzip, deflate"
            response = await self._inner.handle_async_request(request)
            try:
                body, stream = _Body(response.headers), cast(Any, response.stream)
                async for chunk in stream:
                    body.feed(chunk)
            finally:
                await response.aclose()
            return _replace(httpx2, request, response, body.finish())

        async def aclose(self) -> None:
            await self._inner.aclose()

    return LimitedTransport()


def limited_sync_transport() -> Any:
    """The same limits for the SDK's synchronous client (`openai:` model resolution)."""
    import httpx2

    class LimitedSyncTransport(httpx2.BaseTransport):
        def __init__(self) -> None:
            self._inner = httpx2.HTTPTransport()

        def handle_request(self, request: httpx2.Request) -> httpx2.Response:
            request.headers["Accept-Encoding"] = "gzip, deflate"
            response = self._inner.handle_request(request)
            try:
                body, stream = _Body(response.headers), cast(Any, response.stream)
                for chunk in stream:
                    body.feed(chunk)
            finally:
                response.close()
            return _replace(httpx2, request, response, body.finish())

        def close(self) -> None:
            self._inner.close()

    return LimitedSyncTransport()


def _replace(httpx2: Any, request: Any, response: Any, body: bytes) -> Any:
    """The reply with its decoded body, or `ReplyRefused` for a success that is not JSON."""
    ctype = response.headers.get("content-type", "")
    if 200 <= response.status_code < 300 and not _is_json(ctype):
        raise ReplyRefused(
            f"the reply is {ctype.split(';')[0].strip() or 'of no content type'}, not JSON "
            f"(HTTP {response.status_code})"
        )
    headers = [(k, v) for k, v in response.headers.raw if k.lower() not in _DROP]
    return httpx2.Response(
        response.status_code, headers=headers, content=body, request=request, extensions=response.extensions
    )


def _is_json(ctype: str) -> bool:
    media = ctype.split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json") or media == "text/event-stream"


class _Body:
    """A reply body fed chunk by chunk: decompressed under the byte cap, read within the deadline
    (a server that trickles one byte per read never trips a per-read timeout)."""

    def __init__(self, headers: Any) -> None:
        self.cap = HTTP_BYTES.int_value()
        self.until = time.monotonic() + HTTP_SECONDS.value()
        self.encoding = headers.get("content-encoding", "identity").strip().lower()
        if self.encoding in ("gzip", "x-gzip"):
            self.decoder: Any = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self.encoding == "deflate":
            self.decoder = zlib.decompressobj()
        elif self.encoding in ("identity", ""):
            self.decoder = None
        else:
            raise ReplyRefused(f"the reply uses content encoding {self.encoding!r}, which was not asked for")
        self.out = bytearray()

    def _add(self, data: bytes) -> None:
        self.out.extend(data)
        if len(self.out) > self.cap:
            raise ReplyRefused(f"the reply is larger than {HTTP_BYTES.named()}")

    def feed(self, chunk: bytes) -> None:
        if time.monotonic() > self.until:
            raise ReplyRefused(f"the reply took longer than {HTTP_SECONDS.named()}")
        if self.decoder is None:
            self._add(chunk)
            return
        data = chunk
        try:
            while data:
                # never more than what still fits (+1 to notice), however much the chunk expands
                self._add(self.decoder.decompress(data, self.cap - len(self.out) + 1))
                data = self.decoder.unconsumed_tail
        except zlib.error as e:
            raise ReplyRefused(f"the reply's {self.encoding} body is corrupt ({e})") from None

    def finish(self) -> bytes:
        if self.decoder is not None:
            try:
                self._add(self.decoder.flush())
            except zlib.error as e:
                raise ReplyRefused(f"the reply's {self.encoding} body is corrupt ({e})") from None
        return bytes(self.out)
