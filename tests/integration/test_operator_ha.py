"""Two operator replicas with leader election (a Lease) on a real API server: only the holder acts; killed
with SIGKILL, its standby takes over once the Lease runs out and reconciles what changed meanwhile, and the
pool the first one made keeps exactly its children (nothing is made twice). The take-over time is printed as
JSON. No relayer processes run: the pool's Relayer objects are what is checked."""

from __future__ import annotations

import json
import time
from pathlib import Path

from kubernetes import client

from msq_devstack.chain import Chain
from msq_devstack.kube import KubeControlPlane
from msq_devstack.openbao import OpenBao
from msq_devstack.operator import OperatorProcess
from tests.support import manifests
from tests.support.kube import GROUP, VERSION, crds_api, eventually, list_cr, pool_namespace_fixture

LEASE = "msq-relayer-operator"
LEASE_SECONDS = 6
FORWARDER = "0x5FbDB2315678afecb367f032d93F642f64180aa3"

api = crds_api
namespace = pool_namespace_fixture("ha")


def _replica(kube: KubeControlPlane, ns: str, logs: Path, name: str) -> OperatorProcess:
    return OperatorProcess(
        kube.operator_kubeconfig,
        logs,
        namespaces=[ns],
        name=f"operator-{ns}-{name}",
        env={"POD_NAME": name},
        extra_args=[
            "--leader-elect",
            "--leader-elect-namespace",
            ns,
            "--leader-elect-seconds",
            str(LEASE_SECONDS),
        ],
    ).start()


def _holder(api: client.ApiClient, ns: str) -> str | None:
    return client.CoordinationV1Api(api).read_namespaced_lease(LEASE, ns).spec.holder_identity


def _create_pool(api: client.ApiClient, ns: str, name: str, openbao: OpenBao, chain: Chain) -> None:
    body = manifests.pool(
        name,
        replicas=2,
        vault_addr=openbao.addr,
        rpc_url=chain.rpc_url,
        chain_id=chain.chain_id,
        forwarder=FORWARDER,
    )
    client.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, ns, "relayerpools", body)


def _relayers(api: client.ApiClient, ns: str, pool: str) -> list[str]:
    return sorted(
        r["metadata"]["name"]
        for r in list_cr(api, ns, "relayers")
        if r["metadata"].get("labels", {}).get("relayer.msq.io/pool") == pool
    )


def test_one_replica_acts_and_the_standby_takes_over_after_a_kill(
    api: client.ApiClient,
    namespace: str,
    kube: KubeControlPlane,
    stack_logs: Path,
    openbao: OpenBao,
    chain: Chain,
) -> None:
    a = _replica(kube, namespace, stack_logs, "replica-a")
    b = None
    try:
        eventually(
            lambda: _holder(api, namespace) == "replica-a", timeout=30, what="replica-a holds the Lease"
        )
        b = _replica(kube, namespace, stack_logs, "replica-b")
        _create_pool(api, namespace, "first", openbao, chain)
        eventually(lambda: len(_relayers(api, namespace, "first")) == 2, what="first pool's relayers")
        time.sleep(2 * LEASE_SECONDS)  # the standby keeps waiting while the leader renews
        assert _holder(api, namespace) == "replica-a"
        assert "reconcile_pool" in a.log_path.read_text()
        assert "reconcile_pool" not in b.log_path.read_text(), "the standby acted"

        killed = time.monotonic()
        a.kill()
        _create_pool(api, namespace, "second", openbao, chain)  # a change made while no one leads
        eventually(
            lambda: _holder(api, namespace) == "replica-b", timeout=4 * LEASE_SECONDS, what="replica-b leads"
        )
        took_over = time.monotonic() - killed
        eventually(lambda: len(_relayers(api, namespace, "second")) == 2, what="second pool's relayers")
        reconciled = time.monotonic() - killed
        assert _relayers(api, namespace, "first") == ["first-0", "first-1"]
        print(
            json.dumps(
                {
                    "lease_seconds": LEASE_SECONDS,
                    "takeover_seconds": round(took_over, 1),
                    "first_change_reconciled_seconds": round(reconciled, 1),
                }
            )
        )
        assert took_over < 3 * LEASE_SECONDS
    finally:
        a.stop()
        if b is not None:
            b.stop()
