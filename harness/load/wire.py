"""A small HTTP/1.1 client on asyncio streams for the load driver: keep-alive connections, a
POST with a JSON body, the reply's body handed back chunk by chunk as it arrives.

Why not httpx (which the `openai:` backend uses through the SDK): measured against a loopback
server that answers instantly (`bench/bench_load.py`), its per-request cost made the client the
bottleneck at a few hundred requests/s on two cores, and a client that falls behind its schedule
measures itself. This one does the least a load client must: no redirects, no proxies, no cookies,
no HTTP/2; identity or gzip/deflate bodies, Content-Length or chunked.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


class WireError(Exception):
    """The connection or the reply broke HTTP/1.1 (the request's error)."""


class ReadTimeout(WireError):
    """The server sent nothing for the read timeout."""


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


class Reply:
    """Status and headers of a reply; `chunks()` yields its body as it arrives."""

    def __init__(self, pool: WirePool, conn: _Conn, status: int, headers: dict[str, str]) -> None:
        self.pool, self.conn, self.status, self.headers = pool, conn, status, headers
        self._done = False

    async def chunks(self) -> AsyncIterator[bytes]:
        reader, read = self.conn.reader, self.pool.read
        encoding = self.headers.get("content-encoding", "identity").lower()
        decoder: Any = None
        if encoding in ("gzip", "x-gzip"):
            decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            decoder = zlib.decompressobj()
        elif encoding not in ("identity", ""):
            raise WireError(f"the reply uses content encoding {encoding!r}, which was not asked for")

        def dec(data: bytes) -> bytes:
            return decoder.decompress(data) if decoder is not None else data

        reusable = "close" not in self.headers.get("connection", "").lower()
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            while True:
                line = await read(reader.readuntil(b"\r\n"))
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise WireError(f"bad chunk size line {line[:40]!r}") from None
                if size == 0:
                    while (await read(reader.readuntil(b"\r\n"))) != b"\r\n":  # trailers
                        pass
                    break
                data = await read(reader.readexactly(size + 2))
                yield dec(data[:-2])
        elif "content-length" in self.headers:
            left = int(self.headers["content-length"])
            while left > 0:
                data = await read(reader.read(min(left, 65536)))
                if not data:
                    raise WireError("the connection closed before the reply's end")
                left -= len(data)
                yield dec(data)
        else:  # the body ends when the server closes the connection
            reusable = False
            while data := await read(reader.read(65536)):
                yield dec(data)
        self._done = True
        self.pool.release(self.conn, reusable)

    def discard(self) -> None:
        """The reply was not read to its end: the connection cannot carry another request."""
        if not self._done:
            self._done = True
            self.pool.release(self.conn, False)


class WirePool:
    """Keep-alive connections to one origin, all used on one event loop."""

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        *,
        timeout: float,
        connect_timeout: float,
        max_connections: int = 1024,
    ) -> None:
        parts = urlsplit(base_url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/")
        host_header = parts.netloc.rsplit("@", 1)[-1]
        self.head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": host_header, **headers}.items())
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self.idle: list[_Conn] = []
        self.ssl = ssl.create_default_context() if self.https else None
        self.max_connections = max_connections
        self._slots: asyncio.Semaphore | None = None
        """Requests holding a connection: never more than max_connections open (file handles)."""

    async def read(self, aw: Any) -> Any:
        """One read of the reply, bounded by the read timeout."""
        try:
            async with asyncio.timeout(self.timeout):
                return await aw
        except TimeoutError:
            raise ReadTimeout(f"no data from the server for {self.timeout:g} s (read timeout)") from None
        except asyncio.IncompleteReadError:
            raise WireError("the connection closed in the middle of the reply") from None

    async def _connect(self) -> _Conn:
        try:
            async with asyncio.timeout(self.connect_timeout):
                r, w = await asyncio.open_connection(self.host, self.port, ssl=self.ssl, limit=1 << 20)
        except TimeoutError:
            raise WireError(f"connecting took longer than {self.connect_timeout:g} s") from None
        return _Conn(r, w)

    def release(self, conn: _Conn, reusable: bool) -> None:
        if reusable and not conn.writer.is_closing():
            self.idle.append(conn)
        else:
            conn.writer.close()
        assert self._slots is not None
        self._slots.release()

    async def post(self, path: str, body: dict[str, Any]) -> Reply:
        """Send the request (on an idle connection, else a new one) and read the reply's head."""
        payload = json.dumps(body).encode()
        request = (
            f"POST {self.prefix}{path} HTTP/1.1\r\n{self.head}Content-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        ).encode() + payload
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_connections)
        await self._slots.acquire()
        try:
            return await self._send(request)
        except BaseException:
            self._slots.release()
            raise

    async def _send(self, request: bytes) -> Reply:
        while True:
            fresh = not self.idle
            conn = self.idle.pop() if self.idle else await self._connect()
            try:
                conn.writer.write(request)
                await conn.writer.drain()
                head = await self.read(conn.reader.readuntil(b"\r\n\r\n"))
                break
            except (WireError, ConnectionError, asyncio.LimitOverrunError) as e:
                conn.writer.close()
                # only a kept-alive connection the server closed meanwhile is tried again (nothing
                # was answered on it: no latency is hidden); a timeout is the request's error
                if fresh or isinstance(e, ReadTimeout):
                    raise e if isinstance(e, WireError) else WireError(str(e) or type(e).__name__) from None
        lines = head.decode("latin-1").split("\r\n")
        try:
            status = int(lines[0].split(" ", 2)[1])
        except (IndexError, ValueError):
            conn.writer.close()
            raise WireError(f"not an HTTP reply: {lines[0][:60]!r}") from None
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        return Reply(self, conn, status, headers)

    async def aclose(self) -> None:
        for conn in self.idle:
            conn.writer.close()
        self.idle.clear()
