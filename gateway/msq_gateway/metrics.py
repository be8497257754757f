"""Prometheus metrics of the gateway (process-wide, served at /metrics)."""

from __future__ import annotations

from typing import get_args

from prometheus_client import Counter, Gauge, Histogram, Info

from msq_gateway.models import Kind, TxStatus

REQUESTS = Counter(
    "msq_gateway_requests_total",
    "HTTP requests by route and outcome code ('ok' or the error code).",
    ["route", "code"],
)
LATENCY = Histogram(
    "msq_gateway_request_duration_seconds",
    "Request latency by route.",
    ["route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
RELAYED = Counter(
    "msq_gateway_relayed_transactions_total",
    "Transactions by kind and status: 'accepted' or 'unknown' at submission, then each later status.",
    ["kind", "status"],
)
RELAY_ATTEMPTS = Counter(
    "msq_gateway_relay_attempts_total",
    "Submissions to a relayer by outcome: accepted, rejected, unreachable, unknown.",
    ["relayer", "outcome"],
)
RELAYER_PENDING = Gauge(
    "msq_gateway_relayer_pending", "Pending transactions a relayer last reported.", ["relayer"]
)
RELAYER_ROUTABLE = Gauge(
    "msq_gateway_relayer_routable",
    "1 if the relayer gets new transactions (healthy, not paused or draining).",
    ["relayer"],
)
WEBHOOKS = Counter("msq_gateway_webhooks_total", "Relayer notifications received, by result.", ["result"])
CALLBACKS = Counter("msq_gateway_callbacks_total", "Client callbacks sent, by result.", ["result"])
CONFIG_RELOADS = Counter("msq_gateway_config_reloads_total", "Config reloads by result.", ["result"])
CONFIG_VERSION = Info("msq_gateway_config", "Version (content hash) of the config in use.")


def _initialise() -> None:
    """Every label value known in advance gets its series at 0 from the start: a dashboard or alert then reads
    "none so far" instead of "no data" (say, failed transactions or callbacks where none happened yet)."""
    for kind in get_args(Kind):
        for status in ("accepted", *get_args(TxStatus)):
            RELAYED.labels(kind=kind, status=status)
    for result in ("ok", "bad_signature", "ignored", "unknown_transaction"):
        WEBHOOKS.labels(result=result)
    for result in ("ok", "failed"):
        CALLBACKS.labels(result=result)
    for result in ("ok", "error"):
        CONFIG_RELOADS.labels(result=result)


_initialise()
