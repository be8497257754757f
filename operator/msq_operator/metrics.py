"""Prometheus metrics the operator exports."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter("msq_operator_reconciles_total", "Reconciliations run", ["kind", "result"])
RECONCILE_SECONDS = Histogram(
    "msq_operator_reconcile_duration_seconds",
    "Duration of one reconciliation",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
POOL_REPLICAS = Gauge(
    "msq_operator_pool_replicas",
    "Relayers of a pool by state: desired (spec.replicas), active, ready, draining",
    ["namespace", "pool", "state"],
)
POOL_QUEUE_TARGET = Gauge(
    "msq_operator_pool_queue_target",
    "Backlog the active relayers are sized for (targetQueueDepthPerRelayer x active); 0 without autoscaling",
    ["namespace", "pool"],
)
RELAYER_CONDITION = Gauge(
    "msq_operator_relayer_condition",
    "1 for the status a relayer's condition has now, 0 for the others (as kube-state-metrics does)",
    ["namespace", "relayer", "condition", "status"],
)
CONDITION_STATUSES = ("True", "False", "Unknown")
POOL_QUEUE_DEPTH = Gauge(
    "msq_operator_pool_queue_depth", "Queued transaction requests of a pool", ["namespace", "pool"]
)
RELAYER_BALANCE = Gauge(
    "msq_operator_relayer_balance_wei", "Relayer balance (wei)", ["namespace", "relayer", "address"]
)
RELAYER_OLDEST_PENDING = Gauge(
    "msq_operator_relayer_oldest_pending_seconds",
    "Age of the relayer's oldest transaction not yet mined (0 when there is none)",
    ["namespace", "relayer"],
)
RELAYER_NONCE = Gauge(
    "msq_operator_relayer_nonce",
    "Nonces of a relayer: source=chain (mined transactions of its address), source=relayer (next it assigns)",
    ["namespace", "relayer", "source"],
)
RELAYER_PENDING = Gauge(
    "msq_operator_relayer_pending_transactions", "Relayer pending transactions", ["namespace", "relayer"]
)
SCALE_EVENTS = Counter(
    "msq_operator_scale_events_total",
    "Replica changes written by the autoscaler",
    ["namespace", "pool", "direction"],
)


@contextmanager
def measured(kind: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    except Exception:
        RECONCILES.labels(kind, "error").inc()
        raise
    else:
        RECONCILES.labels(kind, "ok").inc()
    finally:
        RECONCILE_SECONDS.labels(kind).observe(time.perf_counter() - start)


TREASURY_BALANCE = Gauge(
    "msq_operator_treasury_balance_wei",
    "Balance of a pool's treasury (wei)",
    ["namespace", "pool", "address"],
)
TREASURY_RESERVE = Gauge(
    "msq_operator_treasury_reserve_wei",
    "What one refill of every active relayer takes: (targetBalance - minBalance) x active relayers (wei)",
    ["namespace", "pool"],
)
FUNDING_STATE = Gauge(
    "msq_operator_pool_funding_state",
    "1 for a pool's funding state now (status.funding.state, or Unconfigured), 0 for the others",
    ["namespace", "pool", "state"],
)
TOP_UPS = Counter(
    "msq_operator_top_ups_total",
    "Treasury top-ups by outcome: sent, confirmed, failed (reverted), dropped (nonce used elsewhere)",
    ["namespace", "pool", "result"],
)
NONCE_HEAL_ATTEMPTS = Counter(
    "msq_operator_nonce_heal_attempts_total",
    "Healing attempts on stuck transactions by action (Replace, Cancel), counted before the relayer is asked",
    ["namespace", "relayer", "action"],
)
TOP_UP_WEI = Counter("msq_operator_top_up_wei_total", "Wei moved by confirmed top-ups", ["namespace", "pool"])
