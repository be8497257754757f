"""A minimal HTTP/1.1 keep-alive POST client for webhooks.

Webhooks are the busiest outbound traffic (one per status change, four or five per transaction); httpx
spends about half a millisecond of CPU per request, which alone would cap a relayer at a few hundred
transactions a second. This client does only what a webhook needs: POST a body, read the status, discard
the response body (Content-Length, chunked or until close), reuse connections.
"""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlsplit


class PostError(Exception):
    """The request failed before a status line was read."""


class _Conn:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        self.writer.close()


class HttpPoster:
    def __init__(self, url: str, *, timeout: float = 5.0, max_idle: int = 16) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"unsupported webhook URL {url!r}")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        default_port = self._port == (443 if self._ssl else 80)
        self._host_header = self._host if default_port else f"{self._host}:{self._port}"
        self._timeout = timeout
        self._idle: list[_Conn] = []
        self._max_idle = max_idle

    async def _connect(self) -> _Conn:
        reader, writer = await asyncio.open_connection(self._host, self._port, ssl=self._ssl)
        return _Conn(reader, writer)

    async def post(self, body: bytes, headers: dict[str, str]) -> int:
        """POST `body`; return the HTTP status. Raises PostError or OSError/TimeoutError on failure."""
        reused = bool(self._idle)
        conn = self._idle.pop() if reused else await asyncio.wait_for(self._connect(), self._timeout)
        try:
            status, keep = await asyncio.wait_for(self._exchange(conn, body, headers), self._timeout)
        except (OSError, PostError, asyncio.IncompleteReadError) as exc:
            conn.close()
            if reused:
                # An idle keep-alive connection the server had already closed: retry once on a fresh one.
                return await self.post(body, headers)
            raise PostError(str(exc) or type(exc).__name__) from None
        except BaseException:
            conn.close()
            raise
        if keep and len(self._idle) < self._max_idle:
            self._idle.append(conn)
        else:
            conn.close()
        return status

    async def _exchange(self, conn: _Conn, body: bytes, headers: dict[str, str]) -> tuple[int, bool]:
        head = [f"POST {self._target} HTTP/1.1", f"Host: {self._host_header}", f"Content-Length: {len(body)}"]
        head.extend(f"{k}: {v}" for k, v in headers.items())
        conn.writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        await conn.writer.drain()
        while True:
            status_line = await conn.reader.readline()
            if not status_line:
                raise PostError("connection closed before a response")
            parts = status_line.split(None, 2)
            if len(parts) < 2 or not parts[1].isdigit():
                raise PostError(f"bad status line {status_line[:60]!r}")
            status = int(parts[1])
            length: int | None = None
            chunked = False
            keep = parts[0] == b"HTTP/1.1"
            while True:
                line = await conn.reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.partition(b":")
                name, value = name.strip().lower(), value.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding" and b"chunked" in value:
                    chunked = True
                elif name == b"connection":
                    keep = value != b"close" if parts[0] == b"HTTP/1.1" else value == b"keep-alive"
            if 100 <= status < 200:
                continue  # an interim response; the real one follows
            break
        if status in (204, 304):
            pass  # no body by definition, whatever the headers say
        elif chunked:
            while True:
                size = int((await conn.reader.readline()).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while (await conn.reader.readline()) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                await conn.reader.readexactly(size + 2)
        elif length is not None:
            await conn.reader.readexactly(length)
        else:
            await conn.reader.read()
            keep = False
        return status, keep

    async def aclose(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()
