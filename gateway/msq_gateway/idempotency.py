"""Idempotency-Key: a retried request returns the first result and never sends a second transaction.

One Redis key per (API key, Idempotency-Key). The first request claims it with SET NX (state `pending`) and
replaces it with its response (state `done`) when a transaction may exist: accepted, or outcome unknown.
When the first request certainly sent nothing (refused by a check, no relayer), it deletes the claim so a
retry is evaluated afresh. Duplicates arriving meanwhile wait for the first result; a duplicate whose body
differs from the first gets 409 `idempotency_conflict`.

The claim outlives any relay attempt by far (`_CLAIM_TTL`), so it cannot lapse while the first request is
still working; a gateway that dies mid-request leaves a claim that expires, and retries see 409
`idempotency_in_progress` until then rather than risking a second transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from msq_gateway.errors import GatewayError

_CLAIM_TTL = 600
_POLL = 0.02


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: dict[str, Any]


@dataclass
class Claim:
    key: str
    fingerprint: str


def fingerprint(route: str, canonical_body: str) -> str:
    return hashlib.sha256(f"{route}\n{canonical_body}".encode()).hexdigest()


class Idempotency:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    def _key(self, client: str, idem_key: str) -> str:
        # Hashed: the header is client-chosen text of any length and alphabet.
        return f"{self.prefix}:idem:{client}:{hashlib.sha256(idem_key.encode()).hexdigest()}"

    async def begin(self, client: str, idem_key: str, fp: str, wait_seconds: float) -> Claim | StoredResponse:
        """Claim the key (returns Claim) or return the first request's stored response."""
        key = self._key(client, idem_key)
        pending = json.dumps({"state": "pending", "fp": fp})
        deadline = time.monotonic() + wait_seconds
        while True:
            if await self.redis.set(key, pending, nx=True, ex=_CLAIM_TTL):
                return Claim(key, fp)
            raw = await self.redis.get(key)
            if raw is None:
                continue  # the first request released its claim between our SET and GET: try again
            record = json.loads(raw)
            if record.get("fp") != fp:
                raise GatewayError(
                    "idempotency_conflict",
                    "Idempotency-Key: this key was already used with a different request body or route",
                    "Idempotency-Key",
                )
            if record.get("state") == "done":
                return StoredResponse(int(record["status"]), record["body"])
            if time.monotonic() >= deadline:
                raise GatewayError(
                    "idempotency_in_progress",
                    "Idempotency-Key: the first request with this key is still in progress; retry later",
                    "Idempotency-Key",
                )
            await asyncio.sleep(_POLL)

    async def finish(self, claim: Claim, status: int, body: dict[str, Any], ttl: int) -> None:
        await self.redis.set(
            claim.key,
            json.dumps({"state": "done", "fp": claim.fingerprint, "status": status, "body": body}),
            ex=ttl,
        )

    async def release(self, claim: Claim) -> None:
        await self.redis.delete(claim.key)
