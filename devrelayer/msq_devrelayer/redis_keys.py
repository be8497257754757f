"""Redis key names. The queue key is the one OZ's apalis queue uses, so queue depth reads the same way:
`LLEN {REDIS_KEY_PREFIX}:queue:transaction_request_queue:active`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RedisKeys:
    prefix: str
    queue_prefix: str
    relayer_id: str

    @property
    def queue_active(self) -> str:
        return f"{self.queue_prefix}transaction_request_queue:active"

    @property
    def queue_inflight(self) -> str:
        return f"{self.queue_prefix}transaction_request_queue:inflight"

    def transaction(self, tx_id: str) -> str:
        return f"{self.prefix}:transaction:{self.relayer_id}:{tx_id}"

    @property
    def pending(self) -> str:
        """Set of transaction ids that are not final yet (pending .. mined)."""
        return f"{self.prefix}:relayer:{self.relayer_id}:pending"

    @property
    def nonce_next(self) -> str:
        return f"{self.prefix}:relayer:{self.relayer_id}:nonce"

    @property
    def nonce_free(self) -> str:
        """Sorted set of nonces given back after the node refused their transaction; reused first."""
        return f"{self.prefix}:relayer:{self.relayer_id}:nonce_free"

    @property
    def last_confirmed(self) -> str:
        return f"{self.prefix}:relayer:{self.relayer_id}:last_confirmed_at"
