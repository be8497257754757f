"""Operator timings on the local stack, one run: `kubectl apply` of pools of 1, 3 and 5 relayers to Ready
(side by side, so the ratios survive a noisy machine), reconcile durations from the operator's own histogram,
and the scale-up reaction from a real backlog (a burst of transactions through the gateway while the chain
makes no blocks) to the new relayer serving. The relayer pods run the engine `MSQ_RELAYER_ENGINE` selects
(the real OZ Relayer wherever it is built).

`python -m bench.operator_timings` prints JSON.
"""

from __future__ import annotations

import re
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account

from bench.report import emit, progress, quiet_logs
from msq_contracts.artifacts import load_artifact
from msq_devstack.scenario import PoolScenario
from msq_devstack.stack import StackRunner


def _ready_seconds(
    s: PoolScenario, pool: str, replicas: int, autoscaling: dict[str, Any] | None = None
) -> float:
    started = time.monotonic()
    s.create("relayerpools", s.pool_manifest(pool, replicas=replicas, autoscaling=autoscaling))
    s.wait(
        f"{pool} keys",
        lambda: len(s.addresses(pool)) == replicas,
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
            progress("pool of 3 ...")
            three = _ready_seconds(s, "three", 3)
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
            s.create("contractpolicies", s.policy_manifest("auto-contracts", {"app": "auto"}))
            _ready_seconds(s, "auto", 1, auto)
            gw = s.gateway("auto")
            nft = s.w3.eth.contract(address=s.contracts.nft, abi=load_artifact("SampleNFT")["abi"])
            assert stack.chain
            spike = time.monotonic()
            with stack.chain.congested():
                with ThreadPoolExecutor(4) as ex:
                    replies = list(
                        ex.map(
                            lambda _: gw.direct(
                                s.contracts.nft,
                                bytes.fromhex(nft.encode_abi("mint", [Account.create().address])[2:]),
                            ),
                            range(15),
                        )
                    )
                for reply in replies:
                    reply.raise_for_status()
                s.wait("scaled", lambda: s.get("relayerpools", "auto")["spec"]["replicas"] == 2, timeout=90)
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
            return {
                "engine": s.pods.engine,
                "pool_ready_seconds": {
                    "replicas_1": round(one, 2),
                    "replicas_3": round(three, 2),
                    "replicas_5": round(five, 2),
                    "ratio_3_to_1": round(three / one, 2),
                    "ratio_5_to_1": round(five / one, 2),
                },
                "scale_up": {
                    "burst_to_replicas_written_s": round(scaled, 2),
                    "burst_to_new_relayer_ready_s": round(serving, 2),
                },
                "reconcile_duration": _reconcile_histogram(s.operator.metrics_url),
            }
        finally:
            s.stop()


if __name__ == "__main__":
    quiet_logs()
    emit(run())
