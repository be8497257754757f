"""Operator guarantees on a real API server with real OpenBao: no writes when nothing changes, no secret
anywhere in Kubernetes or the logs, a restart mid-reconcile converges without duplicate keys, External
autoscaling never touches replicas, invalid policies are refused with a reason, and deleting a pool cleans
up everything but the keys."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import hvac
import hvac.exceptions
import pytest
import redis
from kubernetes import client

from msq_devstack.chain import Chain
from msq_devstack.kube import KubeControlPlane
from msq_devstack.openbao import OpenBao
from msq_devstack.operator import OperatorProcess
from msq_devstack.redis import Redis
from msq_devstack.scenario import create_pool_secrets
from tests.support import manifests
from tests.support.kube import (
    GROUP,
    VERSION,
    api_client,
    apply_crds,
    condition,
    eventually,
    get_cr,
    list_cr,
)

FORWARDER = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


@pytest.fixture(scope="module")
def api(kube: KubeControlPlane) -> client.ApiClient:
    apply_crds(kube)
    return api_client(kube)


@pytest.fixture(scope="module")
def ns(api: client.ApiClient, openbao: OpenBao, redis_server: Redis) -> str:
    name = f"life-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    create_pool_secrets(api, name, openbao.root_token, redis_server.url, {"ops": "o" * 40})
    return name


@pytest.fixture(scope="module")
def operator(kube: KubeControlPlane, ns: str, stack_logs: Path) -> Iterator[OperatorProcess]:
    op = OperatorProcess(kube.operator_kubeconfig, stack_logs, namespaces=[ns], name=f"operator-{ns}").start()
    yield op
    op.stop()


def _pool(openbao: OpenBao, chain: Chain, name: str, replicas: int, **kw: object) -> dict:
    return manifests.pool(
        name,
        replicas=replicas,
        vault_addr=openbao.addr,
        rpc_url=chain.rpc_url,
        chain_id=chain.chain_id,
        forwarder=FORWARDER,
        **kw,
    )  # type: ignore[arg-type]


def _create(api: client.ApiClient, ns: str, plural: str, body: dict) -> None:
    client.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, ns, plural, body)


def _settled(api: client.ApiClient, ns: str, pool: str, replicas: int) -> bool:
    relayers = list_cr(api, ns, "relayers", f"relayer.msq.io/pool={pool}")
    p = get_cr(api, ns, "relayerpools", pool)
    return (
        len(relayers) == replicas
        and all((r.get("status") or {}).get("address") for r in relayers)
        and (p.get("status") or {}).get("replicas") == replicas
        and len(yaml_relayers(api, ns, pool)) == replicas
    )


def yaml_relayers(api: client.ApiClient, ns: str, pool: str) -> list[dict]:
    import yaml

    cm = client.CoreV1Api(api).read_namespaced_config_map(f"{pool}-gateway-config", ns)
    return yaml.safe_load(cm.data["gateway.yaml"])["relayers"]  # type: ignore[no-any-return]


def test_restart_mid_reconcile_converges_without_duplicate_keys(
    kube: KubeControlPlane,
    api: client.ApiClient,
    ns: str,
    operator: OperatorProcess,
    openbao: OpenBao,
    chain: Chain,
) -> None:
    _create(api, ns, "relayerpools", _pool(openbao, chain, "restart", 3))
    # Kill the operator as soon as the first relayer exists: the pool and relayers are half reconciled.
    eventually(lambda: list_cr(api, ns, "relayers", "relayer.msq.io/pool=restart"), what="first relayer")
    operator.kill()
    operator.start()
    eventually(lambda: _settled(api, ns, "restart", 3), timeout=90, what="convergence after restart")
    root = openbao.client()
    for r in list_cr(api, ns, "relayers", "relayer.msq.io/pool=restart"):
        meta = root.secrets.kv.v2.read_secret_metadata(
            path=f"msq-relayer/{ns}/{r['metadata']['name']}", mount_point="secret"
        )
        # Written exactly once: a second write would have replaced a key that may hold funds.
        assert meta["data"]["current_version"] == 1
    names = {d.metadata.name for d in client.AppsV1Api(api).list_namespaced_deployment(ns).items}
    assert {"restart-0", "restart-1", "restart-2", "restart-gateway"} <= names


def test_steady_pool_causes_no_writes(
    kube: KubeControlPlane, api: client.ApiClient, ns: str, operator: OperatorProcess
) -> None:
    eventually(lambda: _settled(api, ns, "restart", 3), timeout=90)
    time.sleep(10)  # let status timers observe everything once
    before = len(kube.audited_writes())
    time.sleep(60)
    after = kube.audited_writes()
    assert len(after) == before, [
        (e["verb"], e["objectRef"].get("resource"), e["objectRef"].get("name")) for e in after[before:]
    ]


def test_external_mode_never_writes_replicas(
    api: client.ApiClient,
    ns: str,
    operator: OperatorProcess,
    openbao: OpenBao,
    chain: Chain,
    redis_server: Redis,
) -> None:
    body = _pool(
        openbao,
        chain,
        "keda",
        1,
        autoscaling={
            "mode": "External",
            "minReplicas": 1,
            "maxReplicas": 5,
            "targetQueueDepthPerRelayer": 1,
            "pollIntervalSeconds": 1,
        },
    )
    _create(api, ns, "relayerpools", body)
    eventually(lambda: _settled(api, ns, "keda", 1), timeout=90)
    r = redis.Redis.from_url(redis_server.url)
    r.rpush(f"msq:{ns}:keda-0:queue:transaction_request_queue:active", *[f"x{i}" for i in range(20)])
    time.sleep(6)
    assert get_cr(api, ns, "relayerpools", "keda")["spec"]["replicas"] == 1
    # The depth is still reported, for KEDA/HPA users to look at.
    eventually(lambda: get_cr(api, ns, "relayerpools", "keda")["status"].get("queueDepth") == 20, timeout=30)
    r.delete(f"msq:{ns}:keda-0:queue:transaction_request_queue:active")


def test_invalid_policy_is_refused_with_a_reason(
    api: client.ApiClient, ns: str, operator: OperatorProcess
) -> None:
    body = manifests.contract_policy(
        "bad-method",
        pool_labels={"app": "restart"},
        contracts=[{"address": "0x" + "12" * 20, "methods": ["transfer(address,uint257)"]}],
    )
    _create(api, ns, "contractpolicies", body)
    cond = eventually(
        lambda: condition(get_cr(api, ns, "contractpolicies", "bad-method"), "Accepted"), timeout=30
    )
    assert cond["status"] == "False" and cond["reason"] == "Invalid"
    assert "spec.contracts[0].methods[0]" in cond["message"]
    good = manifests.contract_policy(
        "good",
        pool_labels={"app": "restart"},
        contracts=[{"address": "0x" + "34" * 20, "methods": ["transfer(address,uint256)"]}],
    )
    _create(api, ns, "contractpolicies", good)
    eventually(
        lambda: (get_cr(api, ns, "contractpolicies", "good").get("status") or {}).get("pools") == ["restart"],
        timeout=30,
    )
    import yaml

    def policies() -> list[str]:
        cm = client.CoreV1Api(api).read_namespaced_config_map("restart-gateway-config", ns)
        return [p["name"] for p in yaml.safe_load(cm.data["gateway.yaml"])["policies"]]

    eventually(lambda: policies() == ["good"], timeout=30, what="only the valid policy reaches the gateway")


def test_no_private_key_anywhere(
    kube: KubeControlPlane, api: client.ApiClient, ns: str, operator: OperatorProcess, openbao: OpenBao
) -> None:
    root = openbao.client()
    keys = []
    for r in list_cr(api, ns, "relayers"):
        value = root.secrets.kv.v2.read_secret_version(
            path=f"msq-relayer/{ns}/{r['metadata']['name']}",
            mount_point="secret",
            raise_on_deleted_version=True,
        )
        keys.append(value["data"]["data"]["value"].removeprefix("0x").lower())
    assert keys
    core = client.CoreV1Api(api)
    haystack = [str(s.data) for s in core.list_namespaced_secret(ns).items]
    import base64

    haystack += [
        base64.b64decode(v).decode(errors="replace")
        for s in core.list_namespaced_secret(ns).items
        for v in (s.data or {}).values()
    ]
    haystack += [str(c.data) for c in core.list_namespaced_config_map(ns).items]
    haystack += [f"{e.message} {e.reason}" for e in core.list_namespaced_event(ns).items]
    haystack += [
        str(o)
        for plural in ("relayerpools", "relayers", "contractpolicies")
        for o in list_cr(api, ns, plural)
    ]
    haystack.append(operator.log_path.read_text())
    text = "\n".join(haystack).lower()
    for key in keys:
        assert key not in text
    # Events tell the user what happened, without the key.
    reasons = {e.reason for e in core.list_namespaced_event(ns).items}
    assert {"KeyProvisioned", "ScalingUp"} <= reasons


def test_deleting_a_pool_cleans_up_but_keeps_keys(
    api: client.ApiClient, ns: str, operator: OperatorProcess, openbao: OpenBao
) -> None:
    relayers = [r["metadata"]["name"] for r in list_cr(api, ns, "relayers", "relayer.msq.io/pool=restart")]
    root = openbao.client()
    role_ids = {n: root.auth.approle.read_role_id(f"msq-{ns}-{n}")["data"]["role_id"] for n in relayers}
    assert role_ids
    client.CustomObjectsApi(api).delete_namespaced_custom_object(
        GROUP, VERSION, ns, "relayerpools", "restart"
    )
    eventually(
        lambda: not list_cr(api, ns, "relayers", "relayer.msq.io/pool=restart"),
        timeout=90,
        what="relayers garbage-collected",
    )
    apps = client.AppsV1Api(api)
    eventually(
        lambda: (
            not [
                d for d in apps.list_namespaced_deployment(ns).items if d.metadata.name.startswith("restart-")
            ]
        ),
        timeout=90,
        what="deployments collected",
    )
    for n in relayers:
        with pytest.raises(hvac.exceptions.InvalidPath):
            root.auth.approle.read_role_id(f"msq-{ns}-{n}")
        kept = root.secrets.kv.v2.read_secret_version(
            path=f"msq-relayer/{ns}/{n}", mount_point="secret", raise_on_deleted_version=True
        )
        assert kept["data"]["data"]["value"]
