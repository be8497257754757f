"""Relayer notifications in, client callbacks out, both signed the OZ way.

The signature is the header X-Signature = base64(HMAC-SHA256(raw body, key)).

A notification is trusted only if its signature verifies with the signing key of the relayer it names; it is
parsed only after that. Callbacks to clients are fire-and-forget with a few bounded retries: the status
endpoint stays the source of truth for a client that missed one.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp

from msq_gateway import metrics
from msq_gateway.runtime import Client, RelayerTarget
from msq_gateway.upstreams import HTTP_ERRORS, error_name, post_json

log = logging.getLogger("msq_gateway.webhooks")


def sign(body: bytes, key: bytes) -> str:
    return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()


def signers_of(body: bytes, signature: str | None, relayers: tuple[RelayerTarget, ...]) -> set[str]:
    """Ids of the relayers whose signing key produced `signature` over `body` (several if keys are shared)."""
    if not signature:
        return set()
    try:
        given = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        return set()
    out = set()
    for r in relayers:
        if r.signing_key is not None:
            expected = hmac.new(r.signing_key, body, hashlib.sha256).digest()
            if hmac.compare_digest(expected, given):
                out.add(r.id)
    return out


@dataclass(frozen=True)
class TxUpdate:
    relayer_id: str | None
    tx_id: str
    status: str
    hash: str | None
    reason: str | None


def parse_notification(body: bytes) -> TxUpdate | None:
    """The transaction update in an OZ notification, or None for other payload types (or garbage)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    payload = doc.get("payload", doc)
    if not isinstance(payload, dict):
        return None
    if payload.get("payload_type", "transaction") != "transaction":
        return None
    tx_id, status = payload.get("id"), payload.get("status")
    if not isinstance(tx_id, str) or not isinstance(status, str):
        return None
    relayer_id = payload.get("relayer_id")
    tx_hash = payload.get("hash")
    reason = payload.get("status_reason")
    return TxUpdate(
        relayer_id=relayer_id if isinstance(relayer_id, str) else None,
        tx_id=tx_id,
        status=status.lower(),
        hash=tx_hash if isinstance(tx_hash, str) else None,
        reason=reason if isinstance(reason, str) else None,
    )


class CallbackSender:
    """Posts status changes to clients' callback URLs in the background."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, client: Client, event: dict[str, Any], timeout: float, attempts: int) -> None:
        if not client.callback_url or client.callback_secret is None:
            return
        body = json.dumps(event, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "X-Signature": sign(body, client.callback_secret)}
        task = asyncio.create_task(self._deliver(client.callback_url, body, headers, timeout, attempts))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(
        self, url: str, body: bytes, headers: dict[str, str], timeout: float, attempts: int
    ) -> None:
        delay = 0.5
        for attempt in range(1, attempts + 1):
            try:
                resp = await post_json(
                    self.http, url, body, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
                )
                if resp.status < 300:
                    metrics.CALLBACKS.labels(result="ok").inc()
                    return
                reason = f"HTTP {resp.status}"
            except HTTP_ERRORS as exc:
                reason = error_name(exc)
            if attempt < attempts:
                await asyncio.sleep(delay)
                delay *= 2
        metrics.CALLBACKS.labels(result="failed").inc()
        log.warning("callback to %s failed after %d attempts: %s", url, attempts, reason)

    async def drain(self, timeout: float = 5.0) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout)
