"""The gateway's outbound HTTP: one pooled client per upstream (the chain RPC, client callbacks, each relayer)
and the two calls made on them, a JSON POST and a GET, each read whole."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp

from msq_gateway.runtime import RelayerTarget


@dataclass(frozen=True)
class Reply:
    status: int
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


# Any failure of a call, before or after sending (a total timeout surfaces as the builtin TimeoutError).
HTTP_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)


def new_http_client(max_connections: int = 32) -> aiohttp.ClientSession:
    """A pooled client, created on the running event loop. Idle connections are dropped before the usual 5 s
    server keep-alive, so a request is not written onto a connection the server is closing, which would make
    its outcome unknown. aiohttp, not httpx: bench/http_clients.py measures httpx's client at about 13 times
    the CPU per request, which made it most of the gateway's own cost."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=max_connections, keepalive_timeout=4.0),
        timeout=aiohttp.ClientTimeout(total=5.0),
        trust_env=False,
        auto_decompress=True,
    )


def timeout_of(*, connect: float, read: float) -> aiohttp.ClientTimeout:
    """Connect (a pooled connection or a new one) within `connect`; then no read may wait over `read`. The
    total bounds a slow write too, and cannot expire before the connect timeout would."""
    return aiohttp.ClientTimeout(total=connect + read, connect=connect, sock_connect=connect, sock_read=read)


async def post_json(
    http: aiohttp.ClientSession,
    url: str,
    body: bytes,
    *,
    timeout: aiohttp.ClientTimeout,
    headers: dict[str, str] | None = None,
) -> Reply:
    """POST a JSON body and read the whole answer. Redirects are not followed: an upstream that redirects is
    misconfigured, and following one would send the body where nobody configured it to go."""
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    async with http.post(url, data=body, headers=hdrs, timeout=timeout, allow_redirects=False) as resp:
        return Reply(resp.status, await resp.read())


async def get(
    http: aiohttp.ClientSession,
    url: str,
    *,
    timeout: aiohttp.ClientTimeout,
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
) -> Reply:
    async with http.get(url, headers=headers, params=params, timeout=timeout, allow_redirects=False) as resp:
        return Reply(resp.status, await resp.read())


def error_name(exc: BaseException) -> str:
    return "Timeout" if type(exc) is asyncio.TimeoutError else type(exc).__name__


class Upstreams:
    """The process's HTTP clients: one for the chain RPC, one for client callbacks, one per relayer.

    Separate small pools, so a slow or saturated upstream cannot hold the connections another one needs. Each
    client is created once (on the event loop that uses it) and reused.
    """

    def __init__(self, per_upstream: int = 32) -> None:
        self.per_upstream = per_upstream
        self.rpc = new_http_client(per_upstream)
        self.callbacks = new_http_client(16)
        self._relayers: dict[str, aiohttp.ClientSession] = {}
        self._retiring: set[asyncio.Task[None]] = set()

    def relayer(self, relayer: RelayerTarget) -> aiohttp.ClientSession:
        client = self._relayers.get(relayer.url)
        if client is None:
            client = self._relayers[relayer.url] = new_http_client(self.per_upstream)
        return client

    def retire_except(self, urls: set[str], grace: float = 60.0) -> None:
        """Close the clients of relayers no longer configured, after `grace` s (requests in flight end)."""
        for url in set(self._relayers) - urls:
            client = self._relayers.pop(url)

            async def close_later(c: aiohttp.ClientSession = client) -> None:
                await asyncio.sleep(grace)
                await c.close()

            task = asyncio.create_task(close_later())
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    async def aclose(self) -> None:
        for task in list(self._retiring):
            task.cancel()
        for client in [self.rpc, self.callbacks, *self._relayers.values()]:
            await client.close()
