"""Prometheus metrics, served on METRICS_PORT like OZ's metrics server.

OZ's metrics server (api/routes/metrics.rs) serves `/debug/metrics/scrape` (the whole registry in Prometheus
text) and `/metrics/{name}` (one family); its `/metrics` is a JSON list of family names. Here `/metrics` still
answers Prometheus text (see devrelayer/CONFORMANCE.md). Besides its own `relayer_*` families this registry
carries OZ's transaction families under OZ's names and labels (metrics/mod.rs), updated where OZ updates them
(repositories/transaction/transaction_redis.rs: on create and on every status change).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.metrics_core import Metric

from msq_devrelayer.records import CANCELED, CONFIRMED, EXPIRED, FINAL, PENDING, SUBMITTED

NETWORK_TYPE = "evm"


class _Families:
    """A registry view holding the given families, so `generate_latest` renders just those."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def _exposed_name(family: Metric) -> str:
    # prometheus_client keeps a counter's name without `_total`; OZ names (and looks up) it with the suffix.
    return f"{family.name}_total" if family.type == "counter" else family.name


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
            "relayer_pending_transactions",
            "Transactions pending, sent or submitted (not mined)",
            labels,
            registry=self.registry,
        )
        self._balance = Gauge("relayer_balance_wei", "Relayer balance in wei", labels, registry=self.registry)
        self._nonce = Gauge(
            "relayer_next_nonce", "Next nonce the relayer will use", labels, registry=self.registry
        )
        self._webhooks = Counter(
            "relayer_webhooks", "Webhook deliveries by outcome", [*labels, "outcome"], registry=self.registry
        )
        oz_labels = ["relayer_id", "network_type"]
        self._oz_created = Counter(
            "transactions_created_total",
            "Total number of transactions created",
            oz_labels,
            registry=self.registry,
        )
        self._oz_submitted = Counter(
            "transactions_submitted_total",
            "Total number of transactions submitted to the network",
            oz_labels,
            registry=self.registry,
        )
        self._oz_success = Counter(
            "transactions_success_total",
            "Total number of successful transactions",
            oz_labels,
            registry=self.registry,
        )
        self._oz_failed = Counter(
            "transactions_failed_total",
            "Total number of failed transactions",
            [*oz_labels, "failure_reason", "previous_status"],
            registry=self.registry,
        )
        self._oz_by_status = Gauge(
            "transactions_by_status",
            "Current number of transactions by status",
            [*oz_labels, "status"],
            registry=self.registry,
        )
        # Last status per transaction not yet final, for the gauge and the failure's `previous_status`.
        # In memory, as OZ's registry is: both restart from zero with the process.
        self._last: dict[str, str] = {}
        self._by_status: dict[str, int] = {}
        self._server: ThreadingHTTPServer | None = None

    def serve(self, host: str, port: int) -> None:
        # OZ's Rust registry has no `*_created` series; without them a family reads the same on both engines.
        # Process-wide, which is right here: serve() runs in the relayer's own process only.
        disable_created_metrics()
        registry = self.registry

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0].rstrip("/")
                if path in ("/metrics", "/debug/metrics/scrape"):
                    self._reply(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                    return
                if path.startswith("/metrics/"):
                    name = path.removeprefix("/metrics/")
                    found = [f for f in registry.collect() if _exposed_name(f) == name or f.name == name]
                    if found:
                        self._reply(200, generate_latest(_Families(found)), CONTENT_TYPE_LATEST)  # type: ignore[arg-type]
                        return
                    self._reply(404, b"Metric not found", "text/plain; charset=utf-8")
                    return
                self._reply(404, b"", "text/plain; charset=utf-8")

            def _reply(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True).start()

    def created(self, tx_id: str) -> None:
        self._created.labels(self._id).inc()
        self._status.labels(self._id, PENDING).inc()
        self._oz_created.labels(self._id, NETWORK_TYPE).inc()
        self._move(None, PENDING)
        self._last[tx_id] = PENDING

    def _move(self, old: str | None, new: str) -> None:
        if old is not None:
            # Clamped at 0 like OZ's gauge: after a restart a transaction can leave a status it never entered.
            self._by_status[old] = max(0, self._by_status.get(old, 0) - 1)
            self._oz_by_status.labels(self._id, NETWORK_TYPE, old).set(self._by_status[old])
        self._by_status[new] = self._by_status.get(new, 0) + 1
        self._oz_by_status.labels(self._id, NETWORK_TYPE, new).set(self._by_status[new])

    def status(self, tx_id: str, status: str, reason: str | None = None) -> None:
        self._status.labels(self._id, status).inc()
        # After a restart the previous status is unknown; "pending" is what every transaction starts as.
        previous = self._last.pop(tx_id, PENDING) if status in FINAL else self._last.get(tx_id, PENDING)
        if status not in FINAL:
            self._last[tx_id] = status
        if previous == status:
            return
        self._move(previous, status)
        if status == SUBMITTED:
            self._oz_submitted.labels(self._id, NETWORK_TYPE).inc()
        elif status == CONFIRMED:
            self._oz_success.labels(self._id, NETWORK_TYPE).inc()
        elif status in FINAL:
            self._oz_failed.labels(self._id, NETWORK_TYPE, _failure_reason(status, reason), previous).inc()

    def gauges(self, *, queue_depth: int, pending: int, balance: int | None, next_nonce: int) -> None:
        self._queue.labels(self._id).set(queue_depth)
        self._pending.labels(self._id).set(pending)
        if balance is not None:
            self._balance.labels(self._id).set(balance)
        self._nonce.labels(self._id).set(next_nonce)

    def webhook(self, delivered: bool) -> None:
        self._webhooks.labels(self._id, "delivered" if delivered else "dropped").inc()


def _failure_reason(status: str, reason: str | None) -> str:
    """OZ's `failure_reason` label: from the status, or for `failed` from its status_reason prefixes."""
    if status == EXPIRED:
        return "expired"
    if status == CANCELED:
        return "canceled"
    if reason and reason.startswith("Submission failed:"):
        return "submission_failed"
    if reason and reason.startswith("Preparation failed:"):
        return "preparation_failed"
    return "failed"
