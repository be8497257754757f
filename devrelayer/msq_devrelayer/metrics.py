"""Prometheus metrics, served on METRICS_PORT like OZ's metrics server."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server


class Metrics:
    def __init__(self, relayer_id: str) -> None:
        self.registry = CollectorRegistry()
        labels = ["relayer_id"]
        self._id = relayer_id
        self._created = Counter(
            "relayer_transactions_created", "Transactions accepted by the API", labels, registry=self.registry
        )
        self._status = Counter(
            "relayer_transaction_status_changes",
            "Transaction status changes",
            [*labels, "status"],
            registry=self.registry,
        )
        self._queue = Gauge(
            "relayer_queue_depth", "Jobs waiting in transaction_request_queue", labels, registry=self.registry
        )
        self._pending = Gauge(
            "relayer_pending_transactions", "Transactions not final yet", labels, registry=self.registry
        )
        self._balance = Gauge("relayer_balance_wei", "Relayer balance in wei", labels, registry=self.registry)
        self._nonce = Gauge(
            "relayer_next_nonce", "Next nonce the relayer will use", labels, registry=self.registry
        )
        self._webhooks = Counter(
            "relayer_webhooks", "Webhook deliveries by outcome", [*labels, "outcome"], registry=self.registry
        )

    def serve(self, host: str, port: int) -> None:
        start_http_server(port, addr=host, registry=self.registry)

    def created(self) -> None:
        self._created.labels(self._id).inc()

    def status(self, status: str) -> None:
        self._status.labels(self._id, status).inc()

    def gauges(self, *, queue_depth: int, pending: int, balance: int | None, next_nonce: int) -> None:
        self._queue.labels(self._id).set(queue_depth)
        self._pending.labels(self._id).set(pending)
        if balance is not None:
            self._balance.labels(self._id).set(balance)
        self._nonce.labels(self._id).set(next_nonce)

    def webhook(self, delivered: bool) -> None:
        self._webhooks.labels(self._id, "delivered" if delivered else "dropped").inc()
