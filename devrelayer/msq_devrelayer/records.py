"""A relayed transaction as stored in Redis, and its OZ `EvmTransactionResponse` rendering."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field, fields
from typing import Any

PENDING = "pending"
SENT = "sent"
SUBMITTED = "submitted"
MINED = "mined"
CONFIRMED = "confirmed"
FAILED = "failed"
CANCELED = "canceled"
EXPIRED = "expired"
FINAL = frozenset({CONFIRMED, FAILED, CANCELED, EXPIRED})
STATUSES = frozenset({PENDING, SENT, SUBMITTED, MINED, *FINAL})


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


@dataclass(slots=True)
class TxRecord:
    id: str
    relayer_id: str
    from_address: str
    status: str
    created_at: str
    value: int
    to: str | None = None
    data: str | None = None
    gas_limit: int | None = None
    speed: str | None = None
    gas_price: int | None = None
    max_fee_per_gas: int | None = None
    max_priority_fee_per_gas: int | None = None
    valid_until: str | None = None
    status_reason: str | None = None
    sent_at: str | None = None
    confirmed_at: str | None = None
    nonce: int | None = None
    hash: str | None = None
    # The signed bytes are kept until the node has them, so a restart can broadcast the very same
    # transaction again instead of signing a second one with the same nonce.
    raw: str | None = None
    signature: dict[str, Any] | None = None
    mined_block: int | None = None
    # Every hash signed for the nonce (replacements, cancel no-ops): any of them may be the one that mines,
    # so the tracker asks for all their receipts (OZ keeps the same list, `hashes`, out of its response).
    hashes: list[str] = field(default_factory=list)
    # Set by a cancel of a signed transaction: it stays active until its no-op (or the original) mines.
    is_canceled: bool = False
    # `to` of the transaction that mined, which says whether a cancel's no-op or the original won the nonce.
    mined_to: str | None = None

    @property
    def watched_hashes(self) -> list[str]:
        if self.hashes:
            return self.hashes
        return [] if self.hash is None else [self.hash]  # records stored before `hashes` existed

    def to_json(self) -> str:
        return json.dumps({name: getattr(self, name) for name in _FIELDS}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> TxRecord:
        data = json.loads(text)
        return cls(**{k: v for k, v in data.items() if k in _FIELD_SET})

    @property
    def is_final(self) -> bool:
        return self.status in FINAL

    def response(self) -> dict[str, Any]:
        """OZ's EvmTransactionResponse. Absent optional values are left out (OZ's OpenAPI types them as
        non-nullable strings); the nullable ones (`status_reason`, `gas_limit`, `signature`, `speed`) and
        `is_canceled` (OZ sets it on every record it creates) are always present."""
        out: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "status_reason": self.status_reason,
            "created_at": self.created_at,
            "value": str(self.value),
            # OZ renders the relayer's address as lower-case hex (models/address.rs Display).
            "from": self.from_address.lower(),
            "relayer_id": self.relayer_id,
            "gas_limit": self.gas_limit,
            "signature": self.signature,
            "speed": self.speed,
            "is_canceled": self.is_canceled,
        }
        optional = {
            "hash": self.hash,
            "sent_at": self.sent_at,
            "confirmed_at": self.confirmed_at,
            "nonce": self.nonce,
            "to": self.to,
            "data": self.data,
            "gas_price": None if self.gas_price is None else str(self.gas_price),
            "max_fee_per_gas": None if self.max_fee_per_gas is None else str(self.max_fee_per_gas),
            "max_priority_fee_per_gas": (
                None if self.max_priority_fee_per_gas is None else str(self.max_priority_fee_per_gas)
            ),
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        return out


_FIELDS = tuple(f.name for f in fields(TxRecord))
_FIELD_SET = frozenset(_FIELDS)
