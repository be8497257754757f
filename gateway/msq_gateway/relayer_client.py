"""Calls to OZ Relayer's REST API over one shared HTTP client, with the accepted/not-accepted/unknown split.

The split decides whether a transaction may be retried on another relayer:
- `NotAccepted`: certainly not accepted. Either the request never left (connection refused, connect timeout,
  no pooled connection in time), or the relayer answered with its `{success: false, error}` envelope, or with
  a 4xx outside the envelope: OZ's rate limiter (429) and its body extractors (400, 413) answer in plain text
  before any handler runs (main.rs, api/routes/relayer.rs), so nothing was created.
- `OutcomeUnknown`: it may have been accepted (read timeout after sending, connection dropped mid-response, a
  5xx or 2xx that is not the relayer's envelope). Retrying elsewhere could send the transaction twice.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, cast

import httpx

from msq_gateway.runtime import RelayerTarget


class NotAccepted(Exception):
    def __init__(self, relayer_id: str, reason: str, *, unreachable: bool, status: int | None = None) -> None:
        super().__init__(f"relayer {relayer_id}: {reason}")
        self.relayer_id = relayer_id
        self.reason = reason
        self.unreachable = unreachable
        self.status = status


class OutcomeUnknown(Exception):
    def __init__(self, relayer_id: str, reason: str) -> None:
        super().__init__(f"relayer {relayer_id}: {reason}")
        self.relayer_id = relayer_id
        self.reason = reason


class RelayerError(Exception):
    """A read (status, transaction) failed; harmless, callers fall back. `refused`: nothing listens there."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


@dataclass(frozen=True)
class RelayerStatus:
    pending: int
    paused: bool
    disabled: bool
    nonce: int | None
    balance: int | None


# Errors raised before any byte of the request reached the relayer.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def new_http_client(max_connections: int = 32) -> httpx.AsyncClient:
    """A pooled client. Idle connections are dropped before the usual 5 s server keep-alive, so a request is
    not written onto a connection the server is closing, which would make its outcome unknown."""
    return httpx.AsyncClient(
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections, keepalive_expiry=4.0
        ),
        timeout=httpx.Timeout(5.0),
        follow_redirects=False,
        trust_env=False,
    )


class Upstreams:
    """The process's HTTP clients: one for the chain RPC, one for client callbacks, one per relayer.

    Separate small pools, because httpcore scans its whole pool (quadratically, with a readability check per
    idle connection) each time a request starts or ends: one shared pool holding connections to every upstream
    made that scan the gateway's largest CPU cost under load. Each client is created once and reused.
    """

    def __init__(self, per_upstream: int = 32) -> None:
        self.per_upstream = per_upstream
        self.rpc = new_http_client(per_upstream)
        self.callbacks = new_http_client(16)
        self._relayers: dict[str, httpx.AsyncClient] = {}
        self._retiring: set[asyncio.Task[None]] = set()

    def relayer(self, relayer: RelayerTarget) -> httpx.AsyncClient:
        client = self._relayers.get(relayer.url)
        if client is None:
            client = self._relayers[relayer.url] = new_http_client(self.per_upstream)
        return client

    def retire_except(self, urls: set[str], grace: float = 60.0) -> None:
        """Close the clients of relayers no longer configured, after `grace` s (requests in flight end)."""
        for url in set(self._relayers) - urls:
            client = self._relayers.pop(url)

            async def close_later(c: httpx.AsyncClient = client) -> None:
                await asyncio.sleep(grace)
                await c.aclose()

            task = asyncio.create_task(close_later())
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    async def aclose(self) -> None:
        for task in list(self._retiring):
            task.cancel()
        for client in [self.rpc, self.callbacks, *self._relayers.values()]:
            await client.aclose()


def _envelope(resp: httpx.Response) -> dict[str, Any] | None:
    try:
        body = json.loads(resp.content)
    except ValueError:
        return None
    if isinstance(body, dict) and isinstance(body.get("success"), bool):
        return body
    return None


async def submit_transaction(
    http: httpx.AsyncClient,
    relayer: RelayerTarget,
    payload: dict[str, Any],
    *,
    connect_timeout: float,
    read_timeout: float,
) -> dict[str, Any]:
    """POST one transaction; returns the relayer's transaction object (with `id` and `status`)."""
    timeout = httpx.Timeout(
        connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout
    )
    try:
        resp = await http.post(
            relayer.transactions_url,
            json=payload,
            timeout=timeout,
            headers={"Authorization": relayer.auth_header},
        )
    except _NOT_SENT as exc:
        # A pool timeout also lands here: the request waited for a connection and was never written.
        raise NotAccepted(relayer.id, f"unreachable: {type(exc).__name__}", unreachable=True) from exc
    except httpx.HTTPError as exc:
        raise OutcomeUnknown(relayer.id, f"{type(exc).__name__} after sending: {exc}") from exc
    env = _envelope(resp)
    if env is None and 400 <= resp.status_code < 500:
        raise NotAccepted(
            relayer.id,
            f"HTTP {resp.status_code}: {resp.text[:200]}",
            unreachable=False,
            status=resp.status_code,
        )
    if env is None:
        raise OutcomeUnknown(relayer.id, f"HTTP {resp.status_code} without the relayer's response envelope")
    if not env["success"]:
        raise NotAccepted(
            relayer.id,
            str(env.get("error") or f"HTTP {resp.status_code}"),
            unreachable=False,
            status=resp.status_code,
        )
    data = env.get("data")
    if resp.status_code >= 300 or not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise OutcomeUnknown(relayer.id, f"HTTP {resp.status_code} success envelope without a transaction id")
    return data


async def _get_data(
    http: httpx.AsyncClient,
    relayer: RelayerTarget,
    url: str,
    timeout: float,
    what: str,
    kind: type,
    params: dict[str, Any] | None = None,
) -> Any:
    """GET one of the relayer's resources; its envelope's `data`, which must be a `kind`."""
    try:
        resp = await http.get(
            url, params=params, timeout=timeout, headers={"Authorization": relayer.auth_header}
        )
    except httpx.HTTPError as exc:
        raise RelayerError(
            f"relayer {relayer.id}: {type(exc).__name__}", refused=isinstance(exc, httpx.ConnectError)
        ) from exc
    env = _envelope(resp)
    if env is None or not env["success"] or not isinstance(env.get("data"), kind):
        raise RelayerError(f"relayer {relayer.id}: HTTP {resp.status_code} {what}")
    return env["data"]


async def get_transaction(
    http: httpx.AsyncClient, relayer: RelayerTarget, tx_id: str, timeout: float
) -> dict[str, Any]:
    url = f"{relayer.transactions_url}/{tx_id}"
    return cast(
        dict[str, Any], await _get_data(http, relayer, url, timeout, f"reading transaction {tx_id}", dict)
    )


async def list_transactions(
    http: httpx.AsyncClient, relayer: RelayerTarget, page: int, per_page: int, timeout: float
) -> list[dict[str, Any]]:
    """One page of the relayer's transactions, newest first (as OZ lists them)."""
    params = {"page": page, "per_page": per_page}
    data = await _get_data(
        http, relayer, relayer.transactions_url, timeout, "listing transactions", list, params
    )
    return [tx for tx in data if isinstance(tx, dict)]


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


async def get_status(http: httpx.AsyncClient, relayer: RelayerTarget, timeout: float) -> RelayerStatus:
    data = await _get_data(http, relayer, relayer.status_url, timeout, "reading status", dict)
    return RelayerStatus(
        pending=_int_or_none(data.get("pending_transactions_count")) or 0,
        paused=bool(data.get("paused")),
        disabled=bool(data.get("system_disabled")),
        nonce=_int_or_none(data.get("nonce")),
        balance=_int_or_none(data.get("balance")),
    )
