"""A small async JSON-RPC client for the chain: one pooled HTTP client, batches, and errors that say
whether a request may have reached the node (which decides if a nonce can be reused)."""

from __future__ import annotations

import itertools
from typing import Any

import httpx


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
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=3.0),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=32),
            headers={"content-type": "application/json"},
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _post(self, body: Any) -> Any:
        # Fail over to the next URL only when the connection could not be opened: then nothing was sent.
        last: Exception | None = None
        for attempt in range(len(self._urls)):
            url = self._urls[(self._current + attempt) % len(self._urls)]
            try:
                resp = await self._client.post(url, json=body)
            except httpx.ConnectError as exc:
                last = exc
                continue
            except httpx.HTTPError as exc:
                raise RpcTransportError(f"{type(exc).__name__}: {exc}", reached=True) from None
            self._current = (self._current + attempt) % len(self._urls)
            if resp.status_code != 200:
                raise RpcTransportError(f"HTTP {resp.status_code} from {url}", reached=True)
            return resp.json()
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
