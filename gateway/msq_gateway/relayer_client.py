"""Calls to OZ Relayer's REST API on each relayer's pooled client: the accepted/not-accepted/unknown split.

The split decides whether a transaction may be retried on another relayer:
- `NotAccepted`: certainly not accepted. Either the request never left (connection refused, connect timeout,
  no pooled connection in time), or the relayer answered with its `{success: false, error}` envelope, or with
  a 4xx outside the envelope: OZ's rate limiter (429) and its body extractors (400, 413) answer in plain text
  before any handler runs (main.rs, api/routes/relayer.rs), so nothing was created.
- `OutcomeUnknown`: it may have been accepted (read timeout after sending, connection dropped mid-response, a
  5xx or 2xx that is not the relayer's envelope). Retrying elsewhere could send the transaction twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast

import aiohttp

from msq_gateway.runtime import RelayerTarget
from msq_gateway.upstreams import HTTP_ERRORS, Reply, error_name, get, post_json, timeout_of


class NotAccepted(Exception):
    def __init__(self, relayer_id: str, reason: str, *, unreachable: bool, status: int | None = None) -> None:
        super().__init__(f"relayer {relayer_id}: {reason}")
        self.relayer_id = relayer_id
        self.reason = reason
        self.unreachable = unreachable
        self.status = status


class OutcomeUnknown(Exception):
    """`answered`: the relayer itself answered (HTTP 500 outside its envelope), so its handler had finished:
    whatever it created is in its store by then, and a later listing without it is conclusive."""

    def __init__(self, relayer_id: str, reason: str, *, answered: bool = False) -> None:
        super().__init__(f"relayer {relayer_id}: {reason}")
        self.relayer_id = relayer_id
        self.reason = reason
        self.answered = answered


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


# Errors raised before any byte of the request reached the relayer: no connection could be made (refused,
# unresolvable), none was free or made within the connect timeout, or the URL cannot be used at all.
_NOT_SENT = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
    aiohttp.InvalidURL,
    aiohttp.NonHttpUrlClientError,
)


def _envelope(resp: Reply) -> dict[str, Any] | None:
    try:
        body = json.loads(resp.content)
    except ValueError:
        return None
    if isinstance(body, dict) and isinstance(body.get("success"), bool):
        return body
    return None


async def submit_transaction(
    http: aiohttp.ClientSession,
    relayer: RelayerTarget,
    payload: dict[str, Any],
    *,
    connect_timeout: float,
    read_timeout: float,
) -> dict[str, Any]:
    """POST one transaction; returns the relayer's transaction object (with `id` and `status`)."""
    try:
        resp = await post_json(
            http,
            relayer.transactions_url,
            json.dumps(payload).encode(),
            timeout=timeout_of(connect=connect_timeout, read=read_timeout),
            headers={"Authorization": relayer.auth_header},
        )
    except _NOT_SENT as exc:
        # A wait for a free pooled connection also lands here: the request was never written.
        raise NotAccepted(relayer.id, f"unreachable: {error_name(exc)}", unreachable=True) from exc
    except HTTP_ERRORS as exc:
        raise OutcomeUnknown(relayer.id, f"{error_name(exc)} after sending: {exc}") from exc
    env = _envelope(resp)
    if env is None and 400 <= resp.status < 500:
        raise NotAccepted(
            relayer.id,
            f"HTTP {resp.status}: {resp.text[:200]}",
            unreachable=False,
            status=resp.status,
        )
    if env is None:
        # 500 is the relayer's own failure (e.g. its store went away mid-write); 502-504 may come from a proxy
        # in front of it while the relayer is still working.
        raise OutcomeUnknown(
            relayer.id,
            f"HTTP {resp.status} without the relayer's response envelope",
            answered=resp.status == 500,
        )
    if not env["success"]:
        raise NotAccepted(
            relayer.id,
            str(env.get("error") or f"HTTP {resp.status}"),
            unreachable=False,
            status=resp.status,
        )
    data = env.get("data")
    if resp.status >= 300 or not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise OutcomeUnknown(relayer.id, f"HTTP {resp.status} success envelope without a transaction id")
    return data


async def _get_data(
    http: aiohttp.ClientSession,
    relayer: RelayerTarget,
    url: str,
    timeout: float,
    what: str,
    kind: type,
    params: dict[str, Any] | None = None,
) -> Any:
    """GET one of the relayer's resources; its envelope's `data`, which must be a `kind`."""
    try:
        resp = await get(
            http,
            url,
            params=params,
            timeout=aiohttp.ClientTimeout(total=timeout),
            headers={"Authorization": relayer.auth_header},
        )
    except HTTP_ERRORS as exc:
        refused = isinstance(exc, aiohttp.ClientConnectorError)
        raise RelayerError(f"relayer {relayer.id}: {error_name(exc)}", refused=refused) from exc
    env = _envelope(resp)
    if env is None or not env["success"] or not isinstance(env.get("data"), kind):
        raise RelayerError(f"relayer {relayer.id}: HTTP {resp.status} {what}")
    return env["data"]


async def get_transaction(
    http: aiohttp.ClientSession, relayer: RelayerTarget, tx_id: str, timeout: float
) -> dict[str, Any]:
    url = f"{relayer.transactions_url}/{tx_id}"
    return cast(
        dict[str, Any], await _get_data(http, relayer, url, timeout, f"reading transaction {tx_id}", dict)
    )


async def list_transactions(
    http: aiohttp.ClientSession, relayer: RelayerTarget, page: int, per_page: int, timeout: float
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


async def get_status(http: aiohttp.ClientSession, relayer: RelayerTarget, timeout: float) -> RelayerStatus:
    data = await _get_data(http, relayer, relayer.status_url, timeout, "reading status", dict)
    return RelayerStatus(
        pending=_int_or_none(data.get("pending_transactions_count")) or 0,
        paused=bool(data.get("paused")),
        disabled=bool(data.get("system_disabled")),
        nonce=_int_or_none(data.get("nonce")),
        balance=_int_or_none(data.get("balance")),
    )
