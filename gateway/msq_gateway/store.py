"""Transaction records in Redis: gateway id -> (client, relayer, relayer transaction id, status).

Statuses only move forward (pending < sent < submitted < mined < terminal) and a terminal status never
changes, so webhooks arriving out of order, duplicated, or racing a status poll cannot regress a record. The
compare and set runs as one Lua script, atomic in Redis.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis

TERMINAL = frozenset({"confirmed", "failed", "canceled", "expired"})
KNOWN = frozenset({"pending", "sent", "submitted", "mined", *TERMINAL})

# Moves one record forward and returns {gid, changed, previous status, the record as a flat HGETALL list}, or
# {} when there is no such record. With ARGV[5] == "1", KEYS[1] is the (relayer, transaction) index and the
# record key is ARGV[6] .. gid: one round trip for a webhook. (The derived key makes this single-node Redis
# only, as is the rest of the store.)
_UPDATE = """
local key = KEYS[1]
local gid = ARGV[7]
if ARGV[5] == '1' then
  gid = redis.call('GET', KEYS[1])
  if not gid then return {} end
  key = ARGV[6] .. gid
end
local cur = redis.call('HGET', key, 'status')
if not cur then return {} end
local rank = {unknown=-1, pending=0, sent=1, submitted=2, mined=3,
              confirmed=4, failed=4, canceled=4, expired=4}
local rc = rank[cur] or -1
local rn = rank[ARGV[1]]
local changed = 0
if rn ~= nil and rc < 4 and rn >= rc then
  if cur ~= ARGV[1] then
    redis.call('HSET', key, 'status', ARGV[1])
    changed = 1
  end
  if ARGV[2] ~= '' and redis.call('HGET', key, 'hash') ~= ARGV[2] then
    redis.call('HSET', key, 'hash', ARGV[2])
    changed = 1
  end
  if ARGV[3] ~= '' then redis.call('HSET', key, 'reason', ARGV[3]) end
  if changed == 1 then redis.call('HSET', key, 'updatedAt', ARGV[4]) end
end
return {gid, changed, cur, redis.call('HGETALL', key)}
"""


# Writes a new record in one round trip. KEYS: the record, the (relayer, transaction) index or '', the set of
# unknown outcomes or ''. ARGV: ttl, gid, creation time, then the record's fields as name, value pairs.
_CREATE = """
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('EXPIRE', KEYS[1], ARGV[1])
if KEYS[2] ~= '' then redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[1]) end
if KEYS[3] ~= '' then redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2]) end
return 1
"""


@dataclass(frozen=True)
class Sent:
    """What a submission with an unknown outcome sent, to find it at the relayer later."""

    to: str
    data: str
    value: str
    # The relayer answered (an HTTP 500 outside its envelope) rather than timing out: see reconcile.py.
    answered: bool = False


@dataclass(frozen=True)
class Update:
    """Outcome of a status update: the record after it, and what it was before."""

    record: TxRecord
    changed: bool
    previous: str


@dataclass(frozen=True)
class TxRecord:
    id: str
    kind: str
    client: str
    relayer_id: str
    tx_id: str | None
    status: str
    hash: str | None
    reason: str | None
    created_at: float
    updated_at: float
    # gasless only: the reserved (signer, nonce), released if the transaction fails
    nonce_key: str | None = None

    @classmethod
    def from_hash(cls, gid: str, h: dict[str, str]) -> TxRecord:
        return cls(
            id=gid,
            kind=h.get("kind", "direct"),
            client=h.get("client", ""),
            relayer_id=h.get("relayerId", ""),
            tx_id=h.get("txId") or None,
            status=h.get("status", "unknown"),
            hash=h.get("hash") or None,
            reason=h.get("reason") or None,
            created_at=float(h.get("createdAt", 0)),
            updated_at=float(h.get("updatedAt", 0)),
            nonce_key=h.get("nonceKey") or None,
        )


def new_id() -> str:
    return uuid.uuid4().hex


class TxStore:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._update = redis.register_script(_UPDATE)
        self._create = redis.register_script(_CREATE)

    def _key(self, gid: str) -> str:
        return f"{self.prefix}:tx:{gid}"

    def _index(self, relayer_id: str, tx_id: str) -> str:
        return f"{self.prefix}:oz:{relayer_id}:{tx_id}"

    @property
    def _unknown(self) -> str:
        """Sorted set (by creation time) of the records whose outcome is unknown."""
        return f"{self.prefix}:unknown"

    async def create(
        self,
        gid: str,
        *,
        kind: str,
        client: str,
        relayer_id: str,
        tx_id: str | None,
        status: str,
        hash: str | None,
        ttl: int,
        nonce_key: str | None = None,
        sent: Sent | None = None,
    ) -> TxRecord:
        now = time.time()
        fields = [
            "kind", kind,
            "client", client,
            "relayerId", relayer_id,
            "txId", tx_id or "",
            "status", status,
            "hash", hash or "",
            "createdAt", repr(now),
            "updatedAt", repr(now),
            "nonceKey", nonce_key or "",
        ]  # fmt: skip
        if sent is not None:
            fields += [
                "sentTo", sent.to,
                "sentData", sent.data,
                "sentValue", sent.value,
                "sentAnswered", "1" if sent.answered else "",
                "ttl", str(ttl),
            ]  # fmt: skip
        keys = [
            self._key(gid),
            self._index(relayer_id, tx_id) if tx_id else "",
            self._unknown if sent is not None else "",
        ]
        await self._create(keys=keys, args=[ttl, gid, repr(now), *fields])
        return TxRecord(gid, kind, client, relayer_id, tx_id, status, hash, None, now, now, nonce_key)

    async def unknown(self, limit: int = 100) -> list[tuple[TxRecord, Sent]]:
        """The oldest records whose outcome is unknown, with what they sent; forgets expired ones."""
        out = []
        for gid in await self.redis.zrange(self._unknown, 0, limit - 1):
            h = cast(dict[str, str], await self.redis.hgetall(self._key(gid)))
            if not h or h.get("status") != "unknown" or h.get("txId"):
                await self.redis.zrem(self._unknown, gid)
                continue
            sent = Sent(
                h.get("sentTo", ""),
                h.get("sentData", ""),
                h.get("sentValue", "0"),
                answered=bool(h.get("sentAnswered")),
            )
            out.append((TxRecord.from_hash(gid, h), sent))
        return out

    async def claim(self, gid: str, relayer_id: str, tx_id: str) -> bool:
        """Make the relayer's transaction `tx_id` record `gid`'s, unless another record has it already."""
        ttl = int(cast(str, await self.redis.hget(self._key(gid), "ttl")) or 7 * 86400)
        index = self._index(relayer_id, tx_id)
        if not await self.redis.set(index, gid, ex=ttl, nx=True) and await self.redis.get(index) != gid:
            return False
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._key(gid), "txId", tx_id)
            pipe.zrem(self._unknown, gid)
            await pipe.execute()
        return True

    async def accept(
        self, gid: str, relayer_id: str, tx_id: str, status: str, hash: str | None, ttl: int
    ) -> TxRecord | None:
        """The relayer took the submission of record `gid` (written `unknown` before it was sent) as its
        transaction `tx_id`: the record follows that transaction from now on."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._key(gid), mapping={"relayerId": relayer_id, "txId": tx_id})
            pipe.set(self._index(relayer_id, tx_id), gid, ex=ttl)
            pipe.zrem(self._unknown, gid)
            await pipe.execute()
        upd = await self.update_status(gid, status, hash, None)
        return upd.record if upd is not None else None

    async def give_up(self, gid: str, reason: str) -> Update | None:
        """An unknown outcome the relayer never had: the record ends `failed` with `reason`."""
        upd = await self.update_status(gid, "failed", None, reason)
        await self.redis.zrem(self._unknown, gid)
        return upd

    async def get(self, gid: str) -> TxRecord | None:
        # The client decodes responses, so keys and values are str.
        h = cast(dict[str, str], await self.redis.hgetall(self._key(gid)))
        return TxRecord.from_hash(gid, h) if h else None

    async def update_status(
        self, gid: str, status: str, hash: str | None, reason: str | None
    ) -> Update | None:
        """Move record `gid` forward; None if there is no such record."""
        return await self._apply(self._key(gid), "0", gid, status, hash, reason)

    async def update_by_transaction(
        self, relayer_id: str, tx_id: str, status: str, hash: str | None, reason: str | None
    ) -> Update | None:
        """Move forward the record of a relayer's transaction; None if the gateway has no such record."""
        return await self._apply(self._index(relayer_id, tx_id), "1", "", status, hash, reason)

    async def _apply(
        self, key: str, by_index: str, gid: str, status: str, hash: str | None, reason: str | None
    ) -> Update | None:
        if status not in KNOWN:
            status = "?"  # has no rank: the script then only reads the record
        out = await self._update(
            keys=[key],
            args=[status, hash or "", reason or "", repr(time.time()), by_index, f"{self.prefix}:tx:", gid],
        )
        if not out:
            return None
        gid, changed, previous, flat = out
        fields = dict(zip(flat[::2], flat[1::2], strict=True))
        return Update(TxRecord.from_hash(gid, fields), bool(changed), previous)
