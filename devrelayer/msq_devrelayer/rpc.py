"""A small async JSON-RPC client for the chain: one pooled HTTP client, batches, and errors that say
whether a request may have reached the node (which decides if a nonce can be reused)."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import aiohttp


class RpcError(Exception):
    """The node answered with a JSON-RPC error: the request reached it and was refused."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = code
        self.message = message
        self.data = data


class RpcTransportError(Exception):
    """No JSON-RPC answer. `reached` is False only when the request certainly never left this process
    (the connection could not be opened); after a timeout or a dropped connection it may have arrived."""

    def __init__(self, message: str, *, reached: bool) -> None:
        super().__init__(message)
        self.reached = reached


class JsonRpc:
    def __init__(self, urls: tuple[str, ...], timeout: float = 10.0) -> None:
        if not urls:
            raise ValueError("no RPC URL")
        self._urls = urls
        self._current = 0
        self._ids = itertools.count(1)
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=3.0)
        self._client: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        # Created on first use, on the event loop that uses it. aiohttp rather than httpx: a tenth of the CPU
        # per call (bench/http_clients.py), and the relayer makes several calls per transaction.
        if self._client is None:
            self._client = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=32, keepalive_timeout=4.0), timeout=self._timeout
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()

    async def _post(self, body: Any) -> Any:
        # Fail over to the next URL only when the connection could not be opened: then nothing was sent.
        last: Exception | None = None
        payload = json.dumps(body).encode()
        headers = {"content-type": "application/json"}
        for attempt in range(len(self._urls)):
            url = self._urls[(self._current + attempt) % len(self._urls)]
            try:
                async with self._session().post(url, data=payload, headers=headers) as resp:
                    status, content = resp.status, await resp.read()
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                last = exc
                continue
            except (TimeoutError, aiohttp.ClientError) as exc:
                name = "Timeout" if type(exc) is asyncio.TimeoutError else type(exc).__name__
                raise RpcTransportError(f"{name}: {exc}", reached=True) from None
            self._current = (self._current + attempt) % len(self._urls)
            if status != 200:
                raise RpcTransportError(f"HTTP {status} from {url}", reached=True)
            try:
                return json.loads(content)
            except ValueError:
                raise RpcTransportError(f"not JSON from {url}", reached=True) from None
        raise RpcTransportError(f"cannot connect to any RPC URL: {last}", reached=False)

    async def call(self, method: str, params: list[Any] | None = None) -> Any:
        reply = await self._post(
            {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params or []}
        )
        if "error" in reply:
            err = reply["error"]
            raise RpcError(int(err.get("code", 0)), str(err.get("message", "")), err.get("data"))
        return reply.get("result")

    async def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Results in call order; a refused call yields its RpcError (or RpcTransportError) in its place."""
        if not calls:
            return []
        first = next(self._ids)
        ids = [first + i for i in range(len(calls))]
        self._ids = itertools.count(first + len(calls))
        body = [
            {"jsonrpc": "2.0", "id": i, "method": m, "params": p}
            for i, (m, p) in zip(ids, calls, strict=True)
        ]
        reply = await self._post(body)
        if not isinstance(reply, list):
            err = reply.get("error", {}) if isinstance(reply, dict) else {}
            raise RpcError(int(err.get("code", 0)), str(err.get("message", "batch refused")), err.get("data"))
        by_id = {item.get("id"): item for item in reply}
        out: list[Any] = []
        for i in ids:
            item = by_id.get(i)
            if item is None:
                out.append(RpcTransportError("missing from the batch reply", reached=True))
            elif "error" in item:
                err = item["error"]
                out.append(RpcError(int(err.get("code", 0)), str(err.get("message", "")), err.get("data")))
            else:
                out.append(item.get("result"))
        return out
