"""Operator timings on the local stack, one run: `kubectl apply` of pools of 1 and 5 relayers to Ready
(side by side, so the ratio survives a noisy machine), reconcile durations from the operator's own histogram,
and the scale-up reaction from a queue spike to the new relayer serving.

`python -m bench.operator_timings` prints JSON.
"""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import redis

from bench.report import emit, progress, quiet_logs
from msq_devstack.scenario import PoolScenario
from msq_devstack.stack import StackRunner


def _ready_seconds(
    s: PoolScenario, pool: str, replicas: int, autoscaling: dict[str, Any] | None = None
) -> float:
    started = time.monotonic()
    s.create("relayerpools", s.pool_manifest(pool, replicas=replicas, autoscaling=autoscaling))
    s.wait(
        f"{pool} keys",
        lambda: len([r for r in s.relayers(pool) if (r.get("status") or {}).get("address")]) == replicas,
        timeout=300,
    )
    s.fund_relayers(pool)
    s.wait(f"{pool} Ready", lambda: s.pool_ready(pool), timeout=300)
    return time.monotonic() - started


def _reconcile_histogram(metrics_url: str) -> dict[str, dict[str, float]]:
    text = httpx.get(metrics_url, timeout=5).text
    out: dict[str, dict[str, float]] = {}
    for kind in ("Relayer", "RelayerPool", "ContractPolicy"):
        total = re.search(rf'msq_operator_reconcile_duration_seconds_sum{{kind="{kind}"}} ([0-9.e+-]+)', text)
        count = re.search(
            rf'msq_operator_reconcile_duration_seconds_count{{kind="{kind}"}} ([0-9.e+-]+)', text
        )
        if total and count and float(count.group(1)):
            out[kind] = {
                "count": float(count.group(1)),
                "mean_ms": round(1000 * float(total.group(1)) / float(count.group(1)), 2),
            }
    return out


def run() -> dict[str, Any]:
    with StackRunner() as stack:
        s = PoolScenario.start(stack, "bench", Path(tempfile.mkdtemp(prefix="msq-bench-")))
        try:
            progress("pool of 1 ...")
            one = _ready_seconds(s, "one", 1)
            progress("pool of 5 ...")
            five = _ready_seconds(s, "five", 5)
            progress("scale-up reaction ...")
            auto = {
                "mode": "Internal",
                "minReplicas": 1,
                "maxReplicas": 2,
                "targetQueueDepthPerRelayer": 5,
                "scaleDownStabilizationSeconds": 300,
                "pollIntervalSeconds": 1,
            }
            _ready_seconds(s, "auto", 1, auto)
            assert stack.redis
            r = redis.Redis.from_url(stack.redis.url)
            s.pods.freeze("auto-0")
            spike = time.monotonic()
            r.rpush(
                f"msq:{s.namespace}:auto-0:queue:transaction_request_queue:active",
                *[f"placeholder-{i}" for i in range(10)],
            )
            s.wait("scaled", lambda: s.get("relayerpools", "auto")["spec"]["replicas"] == 2, timeout=60)
            scaled = time.monotonic() - spike
            s.wait(
                "new relayer key",
                lambda: any(
                    (x.get("status") or {}).get("address") and x["metadata"]["name"] == "auto-1"
                    for x in s.relayers("auto")
                ),
            )
            s.fund_relayers("auto")
            s.wait(
                "new relayer ready",
                lambda: any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in (s.get("relayers", "auto-1").get("status") or {}).get("conditions", [])
                ),
                timeout=120,
            )
            serving = time.monotonic() - spike
            s.pods.thaw("auto-0")
            return {
                "pool_ready_seconds": {
                    "replicas_1": round(one, 2),
                    "replicas_5": round(five, 2),
                    "ratio_5_to_1": round(five / one, 2),
                },
                "scale_up": {
                    "spike_to_replicas_written_s": round(scaled, 2),
                    "spike_to_new_relayer_ready_s": round(serving, 2),
                },
                "reconcile_duration": _reconcile_histogram(s.operator.metrics_url),
            }
        finally:
            s.stop()


if __name__ == "__main__":
    quiet_logs()
    emit(run())
