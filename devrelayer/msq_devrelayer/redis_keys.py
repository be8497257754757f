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

    def status_sorted(self, status: str) -> str:
        """OZ's per-status index (repositories/transaction/transaction_redis.rs relayer_status_sorted_key):
        a sorted set of transaction ids scored by creation time in ms (confirmation time for `confirmed`),
        the status in its Rust variant name (`Pending`, `Sent`, ...). OZ's `pending_transactions_count` is the
        sum over Pending, Sent and Submitted, and the operator reads the same sets as a relayer's backlog."""
        return f"{self.prefix}:relayer:{self.relayer_id}:status_sorted:{status.capitalize()}"

    @property
    def relayer_list(self) -> str:
        """OZ's set of relayer ids with state under this prefix (transaction_redis.rs relayer_list_key)."""
        return f"{self.prefix}:relayer_list"

    @property
    def by_created_at(self) -> str:
        """Sorted set of every transaction id scored by creation time, for the paginated list (newest first),
        under the name OZ's repository uses."""
        return f"{self.prefix}:relayer:{self.relayer_id}:tx_by_created_at"

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
