"""The operator reconciles pools and relayers on the real API server with real OpenBao and Redis.

No relayer processes run here (see tests/e2e for that), so relayers stay not-Ready: which also shows that a
relayer whose pending count is unknown is never removed by a drain.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import hvac
import hvac.exceptions
import pytest
import yaml
from eth_account import Account
from kubernetes import client

from msq_devstack.kube import KubeControlPlane
from msq_devstack.openbao import OpenBao
from msq_devstack.operator import OperatorProcess
from msq_gateway.config import parse_config
from tests.support import manifests
from tests.support.kube import (
    GROUP,
    VERSION,
    condition,
    crds_api,
    eventually,
    get_cr,
    kubectl,
    list_cr,
    pool_namespace_fixture,
)

FORWARDER = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


api = crds_api
namespace = pool_namespace_fixture("ops")


@pytest.fixture(scope="module")
def operator(kube: KubeControlPlane, namespace: str, stack_logs: Path) -> Iterator[OperatorProcess]:
    op = OperatorProcess(
        kube.operator_kubeconfig, stack_logs, namespaces=[namespace], name=f"operator-{namespace}"
    ).start()
    yield op
    op.stop()


def _create_pool(api: client.ApiClient, ns: str, body: dict) -> None:
    client.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, ns, "relayerpools", body)


def _kv_key(openbao: OpenBao, path: str) -> str:
    return openbao.client().secrets.kv.v2.read_secret_version(
        path=path, mount_point="secret", raise_on_deleted_version=True
    )["data"]["data"]["value"]


def test_pool_renders_relayers_keys_and_gateway(
    api: client.ApiClient, namespace: str, operator: OperatorProcess, openbao: OpenBao, chain
) -> None:  # type: ignore[no-untyped-def]
    _create_pool(
        api,
        namespace,
        manifests.pool(
            "payments",
            replicas=2,
            vault_addr=openbao.addr,
            rpc_url=chain.rpc_url,
            chain_id=chain.chain_id,
            forwarder=FORWARDER,
        ),
    )
    relayers = eventually(
        lambda: len(list_cr(api, namespace, "relayers")) == 2 and list_cr(api, namespace, "relayers"),
        what="two relayers",
    )
    pool = get_cr(api, namespace, "relayerpools", "payments")
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    for r in relayers:
        name = r["metadata"]["name"]
        assert r["metadata"]["ownerReferences"][0]["uid"] == pool["metadata"]["uid"]
        r = eventually(
            lambda n=name: (
                (o := get_cr(api, namespace, "relayers", n)).get("status", {}).get("address") and o
            ),
            what=f"{name} address",
        )
        # The address in status is the one of the key in Vault, and the key is nowhere else.
        key = _kv_key(openbao, f"msq-relayer/{namespace}/{name}")
        assert Account.from_key(key).address == r["status"]["address"]
        assert condition(r, "KeyProvisioned")["status"] == "True"
        dep = eventually(lambda n=name: apps.read_namespaced_deployment(n, namespace), what="deployment")
        assert dep.metadata.owner_references[0].uid == r["metadata"]["uid"]
        assert dep.spec.replicas == 1 and dep.spec.strategy.type == "Recreate"
        c = dep.spec.template.spec.containers[0]
        assert c.security_context.read_only_root_filesystem is True
        assert dep.spec.template.spec.security_context.run_as_non_root is True
        assert c.readiness_probe.http_get.path == "/api/v1/ready"
        assert c.liveness_probe.http_get.path == "/api/v1/health"
        assert {p.container_port for p in c.ports} == {8080, 8081}
        assert c.resources.limits and c.resources.requests
        svc = core.read_namespaced_service(name, namespace)
        assert svc.metadata.owner_references[0].uid == r["metadata"]["uid"]
        # A Secret, since OZ's rpc_urls are literal and a provider URL may carry a key.
        assert not [
            c for c in core.list_namespaced_config_map(namespace).items if c.metadata.name == f"{name}-config"
        ]
        oz = yaml.safe_load(
            base64.b64decode(core.read_namespaced_secret(f"{name}-config", namespace).data["config.json"])
        )
        assert oz["signers"][0]["type"] == "vault"
        assert oz["signers"][0]["config"]["key_name"] == f"msq-relayer/{namespace}/{name}"
        assert oz["networks"][0]["chain_id"] == chain.chain_id

    def gateway_config():  # type: ignore[no-untyped-def]
        cm = core.read_namespaced_config_map("payments-gateway-config", namespace)
        return cm, parse_config(yaml.safe_load(cm.data["gateway.yaml"]))

    cfg_map, gateway_cfg = eventually(
        lambda: (g := gateway_config())[1].relayers and g, what="gateway relayers"
    )
    assert sorted(r.id for r in gateway_cfg.relayers) == ["payments-0", "payments-1"]
    assert gateway_cfg.api_keys[0].name == "payments-service"
    assert "k" * 40 not in cfg_map.data["gateway.yaml"]  # only the hash
    assert apps.read_namespaced_deployment("payments-gateway", namespace).metadata.owner_references

    pool = eventually(
        lambda: (
            (p := get_cr(api, namespace, "relayerpools", "payments")).get("status", {}).get("selector") and p
        ),
        what="pool status",
    )
    assert pool["status"]["selector"] == "relayer.msq.io/pool=payments"
    assert pool["status"]["replicas"] == 2
    ready = condition(pool, "Ready")
    assert ready and ready["status"] == "False" and "0/2" in ready["message"]


def test_relayer_approle_reads_only_its_own_key(
    api: client.ApiClient, namespace: str, operator: OperatorProcess, openbao: OpenBao
) -> None:
    core = client.CoreV1Api(api)
    import base64

    def creds(name: str) -> dict[str, str]:
        s = core.read_namespaced_secret(f"{name}-credentials", namespace)
        return {k: base64.b64decode(v).decode() for k, v in s.data.items()}

    a = eventually(lambda: creds("payments-0"))
    app = hvac.Client(url=openbao.addr)
    app.auth.approle.login(role_id=a["role_id"], secret_id=a["secret_id"])
    own = app.secrets.kv.v2.read_secret_version(
        path=f"msq-relayer/{namespace}/payments-0", mount_point="secret", raise_on_deleted_version=True
    )
    assert own["data"]["data"]["value"]
    with pytest.raises(hvac.exceptions.Forbidden):
        app.secrets.kv.v2.read_secret_version(
            path=f"msq-relayer/{namespace}/payments-1", mount_point="secret", raise_on_deleted_version=True
        )


def test_kubectl_scale_up_and_drain_holds_unknown_pending(
    kube: KubeControlPlane, api: client.ApiClient, namespace: str, operator: OperatorProcess
) -> None:
    kubectl(kube, "-n", namespace, "scale", "relayerpool/payments", "--replicas=3")
    eventually(lambda: len(list_cr(api, namespace, "relayers")) == 3, what="three relayers")
    kubectl(kube, "-n", namespace, "scale", "relayerpool/payments", "--replicas=1")
    draining = eventually(
        lambda: (
            [r for r in list_cr(api, namespace, "relayers") if r["spec"].get("draining")]
            if len([r for r in list_cr(api, namespace, "relayers") if r["spec"].get("draining")]) == 2
            else None
        ),
        what="two draining",
    )
    assert len(draining) == 2
    cfg = yaml.safe_load(
        client.CoreV1Api(api)
        .read_namespaced_config_map("payments-gateway-config", namespace)
        .data["gateway.yaml"]
    )
    eventually(
        lambda: (
            sum(
                r["draining"]
                for r in yaml.safe_load(
                    client.CoreV1Api(api)
                    .read_namespaced_config_map("payments-gateway-config", namespace)
                    .data["gateway.yaml"]
                )["relayers"]
            )
            == 2
        ),
        what="gateway drains",
    )
    assert cfg["relayers"]
    # Their pending count is unknown (no relayer answers), so they must still exist after the grace period.
    import time

    time.sleep(8)
    assert len(list_cr(api, namespace, "relayers")) == 3
    out = kubectl(kube, "-n", namespace, "get", "relayerpools").stdout
    header = out.splitlines()[0].split()
    assert header[:5] == ["NAME", "NETWORK", "READY", "REPLICAS", "QUEUE"]


def test_a_stale_conditions_write_does_not_stop_a_drain(
    api: client.ApiClient, namespace: str, operator: OperatorProcess
) -> None:
    """The reconcile and the observe timer both write the whole conditions list; a timer pass that read the
    relayer before its reconcile marked it draining writes the old Draining condition back. Written here by
    hand through the status subresource, exactly as that pass would: the operator puts Draining back from the
    spec, or the drain would wait for ever."""
    draining = eventually(
        lambda: [r for r in list_cr(api, namespace, "relayers") if r["spec"].get("draining")],
        what="a draining relayer",
    )[0]
    name = draining["metadata"]["name"]
    generation = draining["metadata"]["generation"]

    def draining_condition() -> dict:
        return condition(get_cr(api, namespace, "relayers", name), "Draining") or {}

    eventually(lambda: draining_condition().get("status") == "True", what="Draining=True")
    stale = [
        c
        if c["type"] != "Draining"
        else {**c, "status": "False", "reason": "Active", "observedGeneration": generation - 1}
        for c in get_cr(api, namespace, "relayers", name)["status"]["conditions"]
    ]
    written = client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "relayers", name, {"status": {"conditions": stale}}
    )
    assert (condition(written, "Draining") or {})["status"] == "False"
    restored = eventually(
        lambda: c if (c := draining_condition()).get("status") == "True" else None,
        timeout=30,
        what="Draining restored from the spec",
    )
    assert restored["observedGeneration"] == generation
