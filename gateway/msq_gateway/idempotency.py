"""Idempotency-Key: a retried request returns the first result and never sends a second transaction.

One Redis key per (API key, Idempotency-Key). The first request claims it with SET NX (state `pending`) and
replaces it with its response (state `done`) when a transaction may exist: accepted, or outcome unknown.
When the first request certainly sent nothing (refused by a check, no relayer), it deletes the claim so a
retry is evaluated afresh. Duplicates arriving meanwhile wait for the first result; a duplicate whose body
differs from the first gets 409 `idempotency_conflict`.

The claim outlives any relay attempt by far (`_CLAIM_TTL`), so it cannot lapse while the first request is
still working. It names the record id the first request relays under, and that record is written before any
relayer sees the transaction (relay.py), so a gateway that dies mid-request leaves either no record
(nothing was sent: retries see 409 `idempotency_in_progress` until the claim expires) or an `unknown` record
the reconciler settles from the relayer's list. A retry that waited its full time for such a claim gets
that record's id in a 504 `relay_outcome_unknown`, stored as the key's answer, instead of a 409 until the
claim expires and a second transaction after.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from msq_gateway.errors import GatewayError

_CLAIM_TTL = 600
_POLL = 0.02
# KEYS[1] := ARGV[2] (expiring in ARGV[3] s) only if it still holds ARGV[1].
_REPLACE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) end
return 1
"""


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
        self._replace = redis.register_script(_REPLACE)

    def _key(self, client: str, idem_key: str) -> str:
        # Hashed: the header is client-chosen text of any length and alphabet.
        return f"{self.prefix}:idem:{client}:{hashlib.sha256(idem_key.encode()).hexdigest()}"

    async def begin(
        self,
        client: str,
        idem_key: str,
        fp: str,
        wait_seconds: float,
        *,
        gid: str,
        record_exists: Callable[[str], Awaitable[bool]],
        done_ttl: int,
    ) -> Claim | StoredResponse:
        """Claim the key for record id `gid` (returns Claim) or return the first request's stored response."""
        key = self._key(client, idem_key)
        pending = json.dumps({"state": "pending", "fp": fp, "gid": gid})
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
                first = record.get("gid")
                if isinstance(first, str) and await record_exists(first):
                    return await self._answer_unknown(key, raw, first, fp, done_ttl)
                raise GatewayError(
                    "idempotency_in_progress",
                    "Idempotency-Key: the first request with this key is still in progress; retry later",
                    "Idempotency-Key",
                )
            await asyncio.sleep(_POLL)

    async def _answer_unknown(self, key: str, raw: Any, gid: str, fp: str, ttl: int) -> StoredResponse:
        """The answer for a claim whose first request relays under record `gid` and has not answered in the
        wait: what a gateway says of a submission whose outcome it does not know. Stored unless the first
        request finished meanwhile; if it finishes later, its answer names the same record."""
        err = GatewayError(
            "relay_outcome_unknown",
            "the first request with this Idempotency-Key did not finish (its gateway may have stopped); "
            f"the transaction may or may not be sent. The status of record id {gid} (and your callback) "
            "will say",
            None,
            id=gid,
        )
        done = json.dumps({"state": "done", "fp": fp, "status": err.status, "body": err.body()})
        await self._replace(keys=[key], args=[raw, done, ttl])
        return StoredResponse(err.status, err.body())

    async def finish(self, claim: Claim, status: int, body: dict[str, Any], ttl: int) -> None:
        await self.redis.set(
            claim.key,
            json.dumps({"state": "done", "fp": claim.fingerprint, "status": status, "body": body}),
            ex=ttl,
        )

    async def release(self, claim: Claim) -> None:
        await self.redis.delete(claim.key)
