"""Operator at scale: many pools of many relayers on one operator process, with what it costs the API server.

One run on one local stack (kube-apiserver with every request in its audit log, OpenBao, Redis, anvil). The
relayer pods do not run: the local pod runner is off, and every Relayer and pool carries the endpoint
annotation of one stub (msq_devstack.relayer_stub) that answers the relayer `/status` and gateway `/readyz`
calls the operator makes, as a funded, idle relayer would. Everything else is real: the operator provisions
each relayer's key and AppRole in OpenBao, renders and applies every Secret, ConfigMap, Deployment and
Service, reads each relayer's chain nonce from anvil and its backlog from Redis.

First `--baseline-pools` pools are created and timed to Ready, then the steady state is measured; then the
rest up to `--pools`, timed and measured the same way, so "flat in pool count" is a ratio of two figures of
one run. Steady state: after every pool is Ready and a settling time, the operator's requests in the
audit log over `--steady-seconds` (reads = get/list, watches started, writes), its CPU seconds from /proc,
and its resident memory (VmRSS now, VmHWM the peak so far).

    .venv/bin/python -m bench.operator_scale [--pools 100] [--relayers 10] [--baseline-pools 10]
        [--steady-seconds 60]
"""

from __future__ import annotations

import argparse
import datetime as dt
import secrets
import time
import uuid
from collections import Counter
from typing import Any

from kubernetes import client, config

from bench.cpu import cpu_seconds, memory_mb
from bench.report import emit, progress, quiet_logs
from msq_devstack.kube import WRITE_VERBS, KubeControlPlane
from msq_devstack.operator import OperatorProcess
from msq_devstack.pods import ANNOTATION_ENDPOINT
from msq_devstack.relayer_stub import EndpointAnnotator, RelayerStub
from msq_devstack.scenario import GROUP, VERSION, apply_crds, create_pool_secrets, pool_manifest
from msq_devstack.stack import Stack, StackRunner

FORWARDER = "0x5FbDB2315678afecb367f032d93F642f64180aa3"  # never called: no transaction is relayed


def _ready_pools(custom: client.CustomObjectsApi, namespace: str) -> set[str]:
    items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "relayerpools")["items"]
    return {
        p["metadata"]["name"]
        for p in items
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (p.get("status") or {}).get("conditions") or []
        )
    }


def _create_pools(
    stack: Stack, custom: client.CustomObjectsApi, namespace: str, names: list[str], relayers: int, stub: str
) -> None:
    assert stack.openbao and stack.chain
    for name in names:
        body = pool_manifest(
            name,
            replicas=relayers,
            vault_addr=stack.openbao.addr,
            rpc_url=stack.chain.rpc_url,
            chain_id=stack.chain.chain_id,
            forwarder=FORWARDER,
        )
        body["metadata"]["annotations"] = {ANNOTATION_ENDPOINT: stub}
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "relayerpools", body)


def _time_to_ready(
    custom: client.CustomObjectsApi, namespace: str, names: list[str], timeout: float
) -> dict[str, Any]:
    """Seconds from now (the pools were just created) until each pool is Ready; raises past `timeout`."""
    started = time.monotonic()
    ready_at: dict[str, float] = {}
    last_note = started
    while len(ready_at) < len(names):
        now = time.monotonic()
        if now - started > timeout:
            raise TimeoutError(f"{len(ready_at)}/{len(names)} pools Ready after {timeout:.0f}s")
        for name in _ready_pools(custom, namespace) & set(names):
            ready_at.setdefault(name, now - started)
        if now - last_note > 15:
            progress(f"  {len(ready_at)}/{len(names)} pools Ready after {now - started:.0f}s")
            last_note = now
        time.sleep(1.0)
    times = sorted(ready_at.values())
    return {
        "pools": len(names),
        "all_ready_s": round(times[-1], 1),
        "first_ready_s": round(times[0], 1),
        "median_ready_s": round(times[len(times) // 2], 1),
    }


def _kind(verb: str) -> str:
    if verb in WRITE_VERBS:
        return "writes"
    return "watches" if verb == "watch" else "reads"


def _steady_state(
    kube: KubeControlPlane, pid: int, stub: RelayerStub, pools: int, relayers: int, seconds: float
) -> dict[str, Any]:
    offset, cpu, stub_before = kube.audit_offset(), cpu_seconds(pid), stub.counts()
    begin, started = dt.datetime.now(dt.UTC), time.monotonic()
    time.sleep(seconds)
    end, elapsed = dt.datetime.now(dt.UTC), time.monotonic() - started
    cpu_used = cpu_seconds(pid) - cpu
    memory = memory_mb(pid)
    stub_after = stub.counts()
    time.sleep(3)  # the audit log is written in batches of up to 1 s
    events = kube.audited_requests(since=offset, received=(begin, end))
    per_minute = 60 / elapsed
    by_kind = Counter(_kind(e["verb"]) for e in events)
    by_request = Counter(
        f"{e['verb']} {e['objectRef'].get('resource', '?')}"
        + (f"/{e['objectRef']['subresource']}" if e["objectRef"].get("subresource") else "")
        for e in events
    )
    by_agent = Counter(e.get("userAgent", "?").split(" ")[0] for e in events)
    writes = by_kind.get("writes", 0)
    return {
        "pools": pools,
        "relayers": pools * relayers,
        "window_s": round(elapsed, 1),
        "requests_per_minute": {
            k: round(by_kind.get(k, 0) * per_minute, 1) for k in ("reads", "watches", "writes")
        },
        "reads_per_minute_per_pool": round(by_kind.get("reads", 0) * per_minute / pools, 3),
        "writes_per_hour_per_pool": round(writes * 3600 / elapsed / pools, 2),
        "by_request_per_minute": {k: round(v * per_minute, 1) for k, v in by_request.most_common()},
        "by_user_agent": dict(by_agent),
        "operator_cpu_s_per_minute": round(cpu_used * per_minute, 2),
        "operator_memory_mb": memory,
        "stub_requests_per_minute": {
            k: round((stub_after.get(k, 0) - stub_before.get(k, 0)) * per_minute, 1) for k in stub_after
        },
    }


def run(
    pools: int = 100,
    relayers: int = 10,
    baseline_pools: int = 10,
    steady_seconds: float = 60,
    settle_seconds: float = 20,
    ready_timeout: float = 1200,
) -> dict[str, Any]:
    baseline_pools = min(baseline_pools, pools)
    namespace = f"scale-{uuid.uuid4().hex[:6]}"
    with StackRunner(audit_reads=True) as stack:
        assert stack.kube and stack.openbao and stack.redis
        stub = RelayerStub().start()
        api = config.new_client_from_config(config_file=str(stack.kube.kubeconfig))
        custom = client.CustomObjectsApi(api)
        apply_crds(stack.kube.kubectl_argv(), api)
        client.CoreV1Api(api).create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace))
        )
        create_pool_secrets(
            api, namespace, stack.openbao.root_token, stack.redis.url, {"bench": secrets.token_urlsafe(32)}
        )
        operator = OperatorProcess(
            stack.kube.operator_kubeconfig, stack.log_dir, namespaces=[namespace], name="operator-scale"
        ).start()
        annotator = EndpointAnnotator(api, namespace, stub.url).start()
        assert operator.process.proc
        pid = operator.process.proc.pid
        try:
            phases = []
            names = [f"pool-{i:03d}" for i in range(pools)]
            for batch in (names[:baseline_pools], names[baseline_pools:]):
                if not batch:
                    continue
                progress(f"{len(batch)} pools of {relayers} relayers ...")
                _create_pools(stack, custom, namespace, batch, relayers, stub.url)
                ready = _time_to_ready(custom, namespace, batch, ready_timeout)
                total = len(_ready_pools(custom, namespace))
                progress(f"  all Ready in {ready['all_ready_s']}s; settling {settle_seconds:.0f}s ...")
                time.sleep(settle_seconds)
                progress(f"  steady state over {steady_seconds:.0f}s at {total} pools ...")
                steady = _steady_state(stack.kube, pid, stub, total, relayers, steady_seconds)
                phases.append({"created": ready, "steady_state": steady})
            result: dict[str, Any] = {
                "relayer_pods": "not run: relayer and gateway endpoints answered by a stub "
                "(msq_devstack.relayer_stub); keys, AppRoles, objects, chain and Redis reads are real",
                "relayers_per_pool": relayers,
                "phases": phases,
            }
            if len(phases) == 2:
                small, large = phases[0]["steady_state"], phases[1]["steady_state"]
                result["ratio_large_to_small"] = {
                    "pools": round(large["pools"] / small["pools"], 1),
                    "reads_per_minute": _ratio(
                        large["requests_per_minute"]["reads"], small["requests_per_minute"]["reads"]
                    ),
                    "operator_cpu": _ratio(
                        large["operator_cpu_s_per_minute"], small["operator_cpu_s_per_minute"]
                    ),
                }
            return result
        finally:
            annotator.stop()
            operator.stop()
            stub.stop()


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pools", type=int, default=100)
    parser.add_argument("--relayers", type=int, default=10, help="relayers per pool")
    parser.add_argument("--baseline-pools", type=int, default=10, help="pools of the first measurement")
    parser.add_argument("--steady-seconds", type=float, default=60)
    parser.add_argument("--settle-seconds", type=float, default=20)
    parser.add_argument("--ready-timeout", type=float, default=1200, help="per phase, seconds")
    args = parser.parse_args()
    quiet_logs()
    emit(
        run(
            args.pools,
            args.relayers,
            args.baseline_pools,
            args.steady_seconds,
            args.settle_seconds,
            args.ready_timeout,
        )
    )


if __name__ == "__main__":
    main()
