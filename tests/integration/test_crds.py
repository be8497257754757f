"""The CRDs of crds/ on a real kube-apiserver: they install, the example overlays are accepted, invalid
objects are refused with clear messages, defaults are filled in, and kubectl (get columns, scale, explain)
works."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from msq_devstack.kube import KubeControlPlane
from msq_devstack.overlay import LocalEndpoints, build_kustomization, write_local_overlay
from tests.support.kube import (
    GROUP,
    REPO,
    VERSION,
    api_client,
    apply_crds,
    crd_names,
    kubectl,
    namespace_fixture,
)

Obj = dict[str, Any]

namespace = namespace_fixture("crds")

ADDRESS = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


@pytest.fixture(scope="module")
def api(kube: KubeControlPlane) -> Iterator[client.ApiClient]:
    apply_crds(kube)
    api = api_client(kube)
    yield api
    api.close()


@pytest.fixture(scope="module")
def objs(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def pool(name: str = "payments") -> Obj:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "RelayerPool",
        "metadata": {"name": name},
        "spec": {
            "network": {"name": "anvil", "chainId": 31337, "rpcUrls": ["http://127.0.0.1:8545"]},
            "signer": {
                "vaultAddress": "http://127.0.0.1:8200",
                "auth": {"method": "Token", "secretRef": {"name": "vault"}},
            },
            "redis": {"urlSecretRef": {"name": "redis"}},
        },
    }


def relayer(name: str = "payments-0") -> Obj:
    spec = copy.deepcopy(pool()["spec"])
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Relayer",
        "metadata": {"name": name},
        "spec": spec,
    }


def policy(name: str = "payments-erc20") -> Obj:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ContractPolicy",
        "metadata": {"name": name},
        "spec": {
            "poolSelector": {"matchLabels": {"relayer.msq.io/team": "payments"}},
            "contracts": [{"address": ADDRESS, "methods": ["transfer(address,uint256)"]}],
        },
    }


PLURALS = {"RelayerPool": "relayerpools", "Relayer": "relayers", "ContractPolicy": "contractpolicies"}


def create(objs: client.CustomObjectsApi, namespace: str, body: Obj, dry_run: bool = False) -> Obj:
    kwargs = {"dry_run": "All"} if dry_run else {}
    result: Obj = objs.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURALS[body["kind"]], body, **kwargs
    )
    return result


def get(objs: client.CustomObjectsApi, namespace: str, plural: str, name: str) -> Obj:
    result: Obj = objs.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
    return result


def refusal(call: Callable[[], object]) -> str:
    """The API server's message for a refused request (422 Invalid)."""
    with pytest.raises(ApiException) as err:
        call()
    assert err.value.status == 422, err.value.body
    message: str = json.loads(err.value.body)["message"]
    return message


def status_patch(kube: KubeControlPlane, namespace: str, resource: str, status: Obj) -> None:
    patch = json.dumps({"status": status})
    kubectl(kube, "patch", resource, "-n", namespace, "--subresource=status", "--type=merge", "-p", patch)


def table(output: str) -> list[list[str]]:
    return [line.split() for line in output.strip().splitlines()]


# --- installation -------------------------------------------------------------------------------------------


def test_crds_are_established_with_names(api: client.ApiClient) -> None:
    ext = client.ApiextensionsV1Api(api)
    expected = {
        "contractpolicies.relayer.msq.io": ("ContractPolicy", ["cp"]),
        "relayerpools.relayer.msq.io": ("RelayerPool", ["rp"]),
        "relayers.relayer.msq.io": ("Relayer", ["rl"]),
    }
    assert crd_names() == sorted(expected)
    for name, (kind, short) in expected.items():
        crd = ext.read_custom_resource_definition(name)
        conditions = {c.type: c.status for c in crd.status.conditions}
        assert conditions["Established"] == "True"
        assert conditions["NamesAccepted"] == "True"
        assert crd.spec.scope == "Namespaced"
        assert crd.status.accepted_names.kind == kind
        assert crd.status.accepted_names.short_names == short
        assert crd.status.accepted_names.categories == ["msq"]
        assert [(v.name, v.served, v.storage) for v in crd.spec.versions] == [("v1alpha1", True, True)]


def test_apply_crds_is_idempotent(kube: KubeControlPlane, api: client.ApiClient) -> None:
    ext = client.ApiextensionsV1Api(api)

    def generations() -> dict[str, int]:
        return {n: ext.read_custom_resource_definition(n).metadata.generation for n in crd_names()}

    before = generations()
    apply_crds(kube)
    assert generations() == before


# --- the example overlays -----------------------------------------------------------------------------------


def render(kube: KubeControlPlane, overlay: str) -> str:
    return kubectl(kube, "kustomize", str(REPO / "k8s" / "overlays" / overlay)).stdout


def documents(manifest: str) -> list[Obj]:
    # Only for looking at names and numbers: kustomize writes addresses unquoted, and a YAML 1.1 reader such
    # as PyYAML takes 0x<hex> for an integer. The manifest itself goes to kubectl as rendered.
    return [d for d in yaml.safe_load_all(manifest) if d]


OVERLAYS = {
    # overlay: (network name, chain id, replicas, autoscaling mode)
    "local": ("anvil", 31337, 2, "Internal"),
    "staging": ("polygon-amoy", 80002, 2, "Disabled"),
    "production": ("polygon", 137, 3, "Internal"),
}


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_overlay_is_accepted_and_applies(
    kube: KubeControlPlane, objs: client.CustomObjectsApi, namespace: str, overlay: str
) -> None:
    manifest = render(kube, overlay)
    kinds = sorted(d["kind"] for d in documents(manifest) if d["apiVersion"].startswith(GROUP))
    assert kinds == ["ContractPolicy", "RelayerPool"]

    dry = kubectl(kube, "create", "--dry-run=server", "-n", namespace, "-f", "-", input=manifest)
    assert "relayerpool.relayer.msq.io/payments created (server dry run)" in dry.stdout
    assert "contractpolicy.relayer.msq.io/payments-erc20 created (server dry run)" in dry.stdout
    assert objs.list_namespaced_custom_object(GROUP, VERSION, namespace, "relayerpools")["items"] == []

    kubectl(kube, "apply", "--server-side", "-n", namespace, "-f", "-", input=manifest)
    name, chain_id, replicas, mode = OVERLAYS[overlay]
    spec = get(objs, namespace, "relayerpools", "payments")["spec"]
    assert (spec["network"]["name"], spec["network"]["chainId"]) == (name, chain_id)
    assert spec["replicas"] == replicas
    assert spec["autoscaling"]["mode"] == mode
    labels = get(objs, namespace, "relayerpools", "payments")["metadata"]["labels"]
    assert labels["relayer.msq.io/environment"] == overlay
    # The policy selects the pool by label.
    selector = get(objs, namespace, "contractpolicies", "payments-erc20")["spec"]["poolSelector"]
    assert selector["matchLabels"].items() <= labels.items()

    if overlay == "production":
        assert spec["autoscaling"]["minReplicas"] == 3 and spec["autoscaling"]["maxReplicas"] == 10
        assert spec["signer"]["vaultAddress"] == "https://vault.vault.svc:8200"
        assert spec["signer"]["auth"]["method"] == "AppRole"
        assert spec["relayer"]["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}
        assert spec["network"]["rpcUrlSecretRef"] == {"name": "polygon-rpc", "key": "url"}


def test_local_overlay_generates_every_secret_the_pool_names(kube: KubeControlPlane) -> None:
    docs = documents(render(kube, "local"))
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    (pool_doc,) = [d for d in docs if d["kind"] == "RelayerPool"]
    spec = pool_doc["spec"]
    refs = [
        (spec["signer"]["auth"]["secretRef"]["name"], "token"),
        (spec["redis"]["urlSecretRef"]["name"], spec["redis"]["urlSecretRef"]["key"]),
        (spec["gateway"]["apiKeysSecretRef"]["name"], "payments-backend"),
    ]
    for name, key in refs:
        # kustomize rewrote the reference to the generated (hash-suffixed) name.
        assert name in secrets, f"{name} not among {sorted(secrets)}"
        assert key in secrets[name]["data"]
    # Every quota names an API key the Secret defines.
    (policy_doc,) = [d for d in docs if d["kind"] == "ContractPolicy"]
    api_keys = set(secrets[spec["gateway"]["apiKeysSecretRef"]["name"]]["data"])
    assert {q["apiKey"] for q in policy_doc["spec"]["quotas"]} <= api_keys


def _address(value: object) -> str:
    """An address as `documents` reads it (PyYAML takes an unquoted 0x<hex> for an integer), lower-case."""
    return f"0x{value:040x}" if isinstance(value, int) else str(value).lower()


def test_the_devstack_points_the_local_overlay_at_its_own_ports_and_changes_nothing_else(
    kube: KubeControlPlane, tmp_path: Path
) -> None:
    """What `make demo` applies: the local overlay with the stack's endpoints and contract addresses."""
    moved = {"sample-token": "0x" + "ab" * 20, "sample-nft": "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0"}
    endpoints = LocalEndpoints(
        rpc_url="http://127.0.0.1:41001",
        vault_addr="http://127.0.0.1:41002",
        vault_token="s.generated-root-token",
        redis_url="redis://127.0.0.1:41003/0",
        forwarder="0x" + "cd" * 20,
        contracts=moved,
    )
    overlay = write_local_overlay(tmp_path / "overlay", endpoints)
    assert "s.generated-root-token" not in overlay.shown and "token=<" in overlay.shown
    docs = documents(kubectl(kube, "kustomize", str(overlay.path)).stdout)
    plain = documents(render(kube, "local"))

    def by_kind(ds: list[Obj], kind: str) -> Obj:
        (doc,) = [d for d in ds if d["kind"] == kind]
        return doc

    pool, plain_pool = by_kind(docs, "RelayerPool"), by_kind(plain, "RelayerPool")
    assert pool["spec"]["network"]["rpcUrls"] == [endpoints.rpc_url]
    assert pool["spec"]["signer"]["vaultAddress"] == endpoints.vault_addr
    assert _address(pool["spec"]["gateway"]["forwarder"]["address"]) == endpoints.forwarder
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    auth = secrets[pool["spec"]["signer"]["auth"]["secretRef"]["name"]]
    assert base64.b64decode(auth["data"]["token"]).decode() == endpoints.vault_token
    redis = secrets[pool["spec"]["redis"]["urlSecretRef"]["name"]]
    assert base64.b64decode(redis["data"]["url"]).decode() == endpoints.redis_url
    keys = secrets[pool["spec"]["gateway"]["apiKeysSecretRef"]["name"]]
    assert {k: base64.b64decode(v).decode() for k, v in keys["data"].items()} == overlay.api_keys
    # Nothing else of the pool changed; the policy moved only the address that differs.
    for spec in (pool["spec"], plain_pool["spec"]):
        spec["network"].pop("rpcUrls"), spec["signer"].pop("vaultAddress"), spec["gateway"].pop("forwarder")
        spec["signer"]["auth"].pop("secretRef"), spec["redis"].pop("urlSecretRef")
    assert pool == plain_pool
    contracts = {
        c["name"]: _address(c["address"]) for c in by_kind(docs, "ContractPolicy")["spec"]["contracts"]
    }
    assert contracts == {name: address.lower() for name, address in moved.items()}
    assert len(build_kustomization(endpoints, overlay.path)["patches"]) == 2
    unmoved = {
        c["name"]: _address(c["address"]) for c in by_kind(plain, "ContractPolicy")["spec"]["contracts"]
    }
    assert len(build_kustomization(replace(endpoints, contracts=unmoved), overlay.path)["patches"]) == 1


# --- validation ---------------------------------------------------------------------------------------------

DROP = object()


def edited(body: Obj, edits: dict[str, Any]) -> Obj:
    """A copy of `body` with dotted paths set (or removed with DROP); numeric segments index lists."""
    out = copy.deepcopy(body)
    for path, value in edits.items():
        *parents, last = path.split(".")
        node: Any = out
        for seg in parents:
            node = node[int(seg)] if seg.isdigit() else node.setdefault(seg, {})
        if value is DROP:
            del node[last]
        elif last.isdigit() and int(last) == len(node):
            node.append(value)
        elif last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value
    return out


INVALID: dict[str, tuple[Obj, dict[str, Any], list[str]]] = {
    "minReplicas > maxReplicas": (
        pool(),
        {"spec.autoscaling": {"mode": "Internal", "minReplicas": 5, "maxReplicas": 2}},
        ["spec.autoscaling", "minReplicas must be <= maxReplicas"],
    ),
    "default maxReplicas below minReplicas": (
        pool(),
        {"spec.autoscaling": {"minReplicas": 11}},
        ["minReplicas must be <= maxReplicas"],
    ),
    "bad forwarder address": (
        pool(),
        {"spec.gateway": {"forwarder": {"address": "0x1234"}}},
        ["spec.gateway.forwarder.address", "should match '^0x[0-9a-fA-F]{40}$'"],
    ),
    "bad receiver address": (
        pool(),
        {"spec.relayer": {"policies": {"whitelistReceivers": [ADDRESS, ADDRESS[:-1] + "g"]}}},
        ["spec.relayer.policies.whitelistReceivers[1]", "should match"],
    ),
    "unknown autoscaling mode": (
        pool(),
        {"spec.autoscaling": {"mode": "Sometimes"}},
        ['spec.autoscaling.mode: Unsupported value: "Sometimes"', '"Disabled", "Internal", "External"'],
    ),
    "missing signer": (pool(), {"spec.signer": DROP}, ["spec.signer: Required value"]),
    "missing signer auth": (pool(), {"spec.signer.auth": DROP}, ["spec.signer.auth: Required value"]),
    "unknown auth method": (
        pool(),
        {"spec.signer.auth.method": "Kubernetes"},
        ['spec.signer.auth.method: Unsupported value: "Kubernetes"'],
    ),
    "neither rpcUrls nor rpcUrlSecretRef": (
        pool(),
        {"spec.network.rpcUrls": DROP},
        ["spec.network", "set rpcUrls or rpcUrlSecretRef"],
    ),
    "empty rpcUrls": (pool(), {"spec.network.rpcUrls": []}, ["set rpcUrls or rpcUrlSecretRef"]),
    "rpc url without scheme": (
        pool(),
        {"spec.network.rpcUrls": ["127.0.0.1:8545"]},
        ["spec.network.rpcUrls[0]", "should match '^https?://'"],
    ),
    "chainId 0": (
        pool(),
        {"spec.network.chainId": 0},
        ["spec.network.chainId", "greater than or equal to 1"],
    ),
    "network name not a DNS label": (
        pool(),
        {"spec.network.name": "Polygon_Amoy"},
        ["spec.network.name", "should match"],
    ),
    "too many replicas": (pool(), {"spec.replicas": 101}, ["spec.replicas", "less than or equal to 100"]),
    "gas price cap not a number": (
        pool(),
        {"spec.relayer": {"policies": {"gasPriceCap": "30 gwei"}}},
        ["spec.relayer.policies.gasPriceCap", "should match '^[0-9]+$'"],
    ),
    "bad resource quantity": (
        pool(),
        {"spec.relayer": {"resources": {"limits": {"memory": "lots"}}}},
        ["spec.relayer.resources.limits.memory", "should match"],
    ),
    "vault path traversal": (
        pool(),
        {"spec.signer.keyPathPrefix": "msq/../other-team"},
        ["spec.signer.keyPathPrefix", "path segments must not be '.' or '..'"],
    ),
    "unknown routing": (
        pool(),
        {"spec.gateway": {"routing": "Random"}},
        ['spec.gateway.routing: Unsupported value: "Random"'],
    ),
    "relayer without network": (relayer(), {"spec.network": DROP}, ["spec.network: Required value"]),
    "relayer bad key prefix": (
        relayer(),
        {"spec.redis.keyPrefix": "msq payments"},
        ["spec.redis.keyPrefix", "should match"],
    ),
    "relayer webhook not http": (
        relayer(),
        {"spec.webhook": {"url": "ftp://gateway"}},
        ["spec.webhook.url", "should match"],
    ),
    "contract neither direct nor gasless": (
        policy(),
        {"spec.contracts.0.direct": False, "spec.contracts.0.gasless": False},
        ["spec.contracts[0]", "a contract must allow direct or gasless"],
    ),
    "bad method signature": (
        policy(),
        {"spec.contracts.0.methods": ["transfer(address,uint256)", "transfer address,uint256"]},
        ["spec.contracts[0].methods[1]", "should match"],
    ),
    "method with unbalanced parentheses": (
        policy(),
        {"spec.contracts.0.methods": ["execute((address,uint256),bytes"]},
        ["spec.contracts[0].methods[0]", "should match"],
    ),
    "contract without methods": (
        policy(),
        {"spec.contracts.0.methods": DROP},
        ["spec.contracts[0]", "a contract must list at least one allowed method"],
    ),
    "bad contract address": (
        policy(),
        {"spec.contracts.0.address": "5FbDB2315678afecb367f032d93F642f64180aa3"},
        ["spec.contracts[0].address", "should match"],
    ),
    "same contract twice in different case": (
        policy(),
        {"spec.contracts.1": {"address": ADDRESS.lower(), "methods": ["approve(address,uint256)"]}},
        ["spec.contracts", "contract addresses must be unique (compared case-insensitively)"],
    ),
    "no contracts": (policy(), {"spec.contracts": []}, ["spec.contracts", "should have at least 1 items"]),
    "missing pool selector": (policy(), {"spec.poolSelector": DROP}, ["spec.poolSelector: Required value"]),
    "selector In without values": (
        policy(),
        {"spec.poolSelector": {"matchExpressions": [{"key": "tier", "operator": "In"}]}},
        ["values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist"],
    ),
    "blocked user not an address": (
        policy(),
        {"spec.blockedUsers": ["alice"]},
        ["spec.blockedUsers[0]", "should match"],
    ),
    "quota without a limit": (
        policy(),
        {"spec.quotas": [{"apiKey": "payments-backend"}]},
        ["spec.quotas[0]", "a quota must set maxTransactions or maxGas"],
    ),
    # Hostile input: every free-form field has a bound, so a huge or odd value is refused with its path.
    "1 MiB RPC URL": (
        pool(),
        {"spec.network.rpcUrls": ["https://" + "a" * (1 << 20)]},
        ["spec.network.rpcUrls[0]", "Too long"],
    ),
    "1 MiB contract name": (
        policy(),
        {"spec.contracts.0.name": "x" * (1 << 20)},
        ["spec.contracts[0].name", "Too long"],
    ),
    "1,025 whitelisted receivers": (
        pool(),
        {"spec.relayer": {"policies": {"whitelistReceivers": [ADDRESS] * 1025}}},
        ["spec.relayer.policies.whitelistReceivers", "Too many"],
    ),
    "unicode network name": (
        pool(),
        {"spec.network.name": "p\u00f6lygon"},
        ["spec.network.name", "should match"],
    ),
    "method with a right-to-left override": (
        policy(),
        {"spec.contracts.0.methods": ["transfer(address,uint256)\u202e"]},
        ["spec.contracts[0].methods[0]", "should match"],
    ),
    "quota of zero transactions": (
        policy(),
        {"spec.quotas": [{"apiKey": "payments-backend", "maxTransactions": 0}]},
        ["spec.quotas[0].maxTransactions", "greater than or equal to 1"],
    ),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_object_is_refused(objs: client.CustomObjectsApi, namespace: str, case: str) -> None:
    base, edits, expected = INVALID[case]
    # The unedited object is valid, so the refusal is down to the edit.
    create(objs, namespace, base, dry_run=True)
    message = refusal(lambda: create(objs, namespace, edited(base, edits)))
    for fragment in expected:
        assert fragment in message, message


def test_chain_id_is_immutable(objs: client.CustomObjectsApi, namespace: str) -> None:
    create(objs, namespace, pool())
    create(objs, namespace, relayer())
    for plural, name in (("relayerpools", "payments"), ("relayers", "payments-0")):
        message = refusal(
            lambda plural=plural, name=name: objs.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                plural,
                name,
                {"spec": {"network": {"chainId": 137}}},
                _content_type="application/merge-patch+json",
            )
        )
        assert "spec.network.chainId" in message and "chainId is immutable" in message, message
        assert get(objs, namespace, plural, name)["spec"]["network"]["chainId"] == 31337
    # Every other field of the network stays editable.
    objs.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "relayerpools",
        "payments",
        {"spec": {"network": {"rpcUrls": ["http://127.0.0.1:9545"], "requiredConfirmations": 3}}},
        _content_type="application/merge-patch+json",
    )
    network = get(objs, namespace, "relayerpools", "payments")["spec"]["network"]
    assert network["rpcUrls"] == ["http://127.0.0.1:9545"] and network["requiredConfirmations"] == 3


# --- defaults -----------------------------------------------------------------------------------------------


def test_defaults_fill_a_minimal_pool(objs: client.CustomObjectsApi, namespace: str) -> None:
    create(objs, namespace, pool())
    spec = get(objs, namespace, "relayerpools", "payments")["spec"]
    assert spec["replicas"] == 1
    assert spec["autoscaling"] == {
        "mode": "Disabled",
        "minReplicas": 1,
        "maxReplicas": 10,
        "targetQueueDepthPerRelayer": 10,
        "scaleDownStabilizationSeconds": 300,
        "pollIntervalSeconds": 15,
    }
    assert spec["relayer"] == {
        "image": "openzeppelin/openzeppelin-relayer:v1.8.0",
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "policies": {"gasLimitEstimation": True},
        "stuckAfterSeconds": 300,
        "healing": {"enabled": True, "replaceAttempts": 3, "cancel": True, "retryAfterSeconds": 60},
    }
    assert spec["gateway"] == {
        "enabled": True,
        "replicas": 1,
        "image": "ghcr.io/msq/msq-relayer:0.1.0",
        "routing": "RoundRobin",
        "port": 8080,
    }
    assert spec["network"]["eip1559"] is True and spec["network"]["requiredConfirmations"] == 1
    assert {k: spec["signer"][k] for k in ("kvMount", "keyPathPrefix", "approleMount")} == {
        "kvMount": "secret",
        "keyPathPrefix": "msq-relayer",
        "approleMount": "approle",
    }
    assert spec["redis"]["urlSecretRef"] == {"name": "redis", "key": "url"}


def test_defaults_fill_only_what_is_missing(objs: client.CustomObjectsApi, namespace: str) -> None:
    body = edited(
        pool(),
        {
            "spec.autoscaling": {"mode": "Internal", "maxReplicas": 4},
            "spec.relayer": {"resources": {"limits": {"cpu": "2"}}},
            "spec.network.rpcUrlSecretRef": {"name": "rpc"},
        },
    )
    create(objs, namespace, body)
    spec = get(objs, namespace, "relayerpools", "payments")["spec"]
    assert (spec["autoscaling"]["mode"], spec["autoscaling"]["maxReplicas"]) == ("Internal", 4)
    assert spec["autoscaling"]["minReplicas"] == 1
    # A given map is kept as given; the sibling map still gets its default.
    assert spec["relayer"]["resources"] == {
        "limits": {"cpu": "2"},
        "requests": {"cpu": "100m", "memory": "128Mi"},
    }
    assert spec["network"]["rpcUrlSecretRef"] == {"name": "rpc", "key": "url"}


def test_defaults_fill_a_minimal_relayer_and_policy(objs: client.CustomObjectsApi, namespace: str) -> None:
    create(objs, namespace, relayer())
    spec = get(objs, namespace, "relayers", "payments-0")["spec"]
    assert spec["paused"] is False and spec["draining"] is False
    assert spec["image"] == "openzeppelin/openzeppelin-relayer:v1.8.0"
    assert spec["policies"] == {"gasLimitEstimation": True}
    assert "keyPrefix" not in spec["redis"]  # the operator derives it

    create(objs, namespace, edited(policy(), {"spec.quotas": [{"apiKey": "batch", "maxGas": "1000000"}]}))
    spec = get(objs, namespace, "contractpolicies", "payments-erc20")["spec"]
    assert spec["contracts"] == [
        {
            "address": ADDRESS,
            "methods": ["transfer(address,uint256)"],
            "maxValue": "0",
            "direct": True,
            "gasless": True,
        }
    ]
    assert spec["quotas"] == [{"apiKey": "batch", "maxGas": "1000000", "windowSeconds": 3600}]


# --- status subresource, conditions and printer columns -----------------------------------------------------


def ready(status: str = "True", generation: int = 1) -> Obj:
    return {
        "type": "Ready",
        "status": status,
        "reason": "AllRelayersReady" if status == "True" else "RelayersStarting",
        "message": "2 of 3 relayers ready",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
        "observedGeneration": generation,
    }


def test_pool_columns_show_status(
    kube: KubeControlPlane, objs: client.CustomObjectsApi, namespace: str
) -> None:
    create(objs, namespace, edited(pool("payments"), {"spec.replicas": 3}))
    status_patch(
        kube,
        namespace,
        "relayerpool/payments",
        {
            "replicas": 3,
            "readyReplicas": 2,
            "replicaSummary": "2/3",
            "queueDepth": 12,
            "conditions": [ready()],
        },
    )
    rows = table(kubectl(kube, "get", "relayerpools", "-n", namespace).stdout)
    assert rows[0] == ["NAME", "NETWORK", "READY", "REPLICAS", "QUEUE", "AGE"]
    assert rows[1][:5] == ["payments", "anvil", "True", "2/3", "12"]

    wide = table(kubectl(kube, "get", "rp", "-n", namespace, "-o", "wide").stdout)
    assert wide[0] == ["NAME", "NETWORK", "READY", "REPLICAS", "QUEUE", "MODE", "AGE"]
    assert wide[1][:6] == ["payments", "anvil", "True", "2/3", "12", "Disabled"]


def test_status_only_changes_through_the_subresource(
    kube: KubeControlPlane, objs: client.CustomObjectsApi, namespace: str
) -> None:
    body = pool()
    body["status"] = {"queueDepth": 99}
    created = create(objs, namespace, body)
    assert "status" not in created or "queueDepth" not in created["status"]
    status_patch(kube, namespace, "relayerpool/payments", {"queueDepth": 5})
    after = get(objs, namespace, "relayerpools", "payments")
    assert after["status"]["queueDepth"] == 5
    assert after["metadata"]["generation"] == 1  # status writes do not bump the generation


def test_conditions_are_standard_and_keyed_by_type(
    kube: KubeControlPlane, objs: client.CustomObjectsApi, namespace: str
) -> None:
    create(objs, namespace, pool())

    def refused(status: Obj) -> str:
        args = ["patch", "relayerpool/payments", "-n", namespace, "--subresource=status", "--type=merge"]
        result = kubectl(kube, *args, "-p", json.dumps({"status": status}), check=False)
        assert result.returncode != 0, result.stdout
        return result.stderr

    assert 'Unsupported value: "Maybe"' in refused({"conditions": [ready("Maybe")]})
    no_reason = {k: v for k, v in ready().items() if k != "reason"}
    assert "status.conditions[0].reason: Required value" in refused({"conditions": [no_reason]})
    assert "Duplicate value" in refused({"conditions": [ready(), ready("False")]})
    bad_time = dict(ready(), lastTransitionTime="yesterday")
    assert "status.conditions[0].lastTransitionTime" in refused({"conditions": [bad_time]})

    scaling = dict(ready(), type="Scaling", status="False", reason="Stable")
    status_patch(kube, namespace, "relayerpool/payments", {"conditions": [ready(), scaling]})
    conditions = get(objs, namespace, "relayerpools", "payments")["status"]["conditions"]
    assert [(c["type"], c["status"]) for c in conditions] == [("Ready", "True"), ("Scaling", "False")]


def test_relayer_and_policy_columns(
    kube: KubeControlPlane, objs: client.CustomObjectsApi, namespace: str
) -> None:
    create(objs, namespace, edited(relayer(), {"spec.draining": True}))
    status_patch(
        kube,
        namespace,
        "relayer/payments-0",
        {"address": ADDRESS, "pending": 4, "balance": "1000000000000000000", "conditions": [ready()]},
    )
    rows = table(kubectl(kube, "get", "relayers", "-n", namespace).stdout)
    assert rows[0] == ["NAME", "ADDRESS", "READY", "DRAINING", "PENDING", "AGE"]
    assert rows[1][:5] == ["payments-0", ADDRESS, "True", "true", "4"]
    wide = table(kubectl(kube, "get", "rl", "-n", namespace, "-o", "wide").stdout)
    assert wide[0] == ["NAME", "ADDRESS", "READY", "DRAINING", "PENDING", "BALANCE", "AGE"]
    assert wide[1][5] == "1000000000000000000"

    create(objs, namespace, policy())
    accepted = dict(ready(), type="Accepted", reason="Valid", message="applies to 2 pools")
    status_patch(
        kube,
        namespace,
        "contractpolicy/payments-erc20",
        {"pools": ["payments", "airdrops"], "conditions": [accepted], "observedGeneration": 1},
    )
    rows = table(kubectl(kube, "get", "cp", "-n", namespace).stdout)
    assert rows[0] == ["NAME", "ACCEPTED", "POOLS", "AGE"]
    assert rows[1][:3] == ["payments-erc20", "True", '["payments","airdrops"]']

    # The msq category lists all three kinds.
    everything = kubectl(kube, "get", "msq", "-n", namespace, "-o", "name").stdout.split()
    assert sorted(everything) == [
        "contractpolicy.relayer.msq.io/payments-erc20",
        "relayer.relayer.msq.io/payments-0",
    ]


# --- scale subresource --------------------------------------------------------------------------------------


def test_kubectl_scale_writes_spec_replicas(
    kube: KubeControlPlane, objs: client.CustomObjectsApi, namespace: str
) -> None:
    create(objs, namespace, pool("x"))
    selector = "relayer.msq.io/pool=x,app.kubernetes.io/component=relayer"
    status_patch(kube, namespace, "relayerpool/x", {"replicas": 1, "selector": selector})

    out = kubectl(kube, "scale", "relayerpool/x", "--replicas=3", "-n", namespace).stdout
    assert "relayerpool.relayer.msq.io/x scaled" in out
    assert get(objs, namespace, "relayerpools", "x")["spec"]["replicas"] == 3

    scale = objs.get_namespaced_custom_object_scale(GROUP, VERSION, namespace, "relayerpools", "x")
    assert scale["kind"] == "Scale"
    assert scale["spec"]["replicas"] == 3
    assert scale["status"] == {"replicas": 1, "selector": selector}

    # Writes through /scale are validated against the schema like any other write.
    refused = kubectl(kube, "scale", "rp/x", "--replicas=101", "-n", namespace, check=False)
    assert refused.returncode != 0 and "less than or equal to 100" in refused.stderr
    assert get(objs, namespace, "relayerpools", "x")["spec"]["replicas"] == 3


# --- kubectl explain ----------------------------------------------------------------------------------------


def test_kubectl_explain_teaches(kube: KubeControlPlane, api: client.ApiClient) -> None:
    out = kubectl(kube, "explain", "relayerpool.spec.autoscaling").stdout
    assert "How the number of relayers follows the queue depth." in out
    for field in ("mode", "minReplicas", "maxReplicas", "targetQueueDepthPerRelayer", "pollIntervalSeconds"):
        assert f"  {field}\t<integer>" in out or f"  {field}\t<string>" in out, field
    assert "enum: Disabled, Internal, External" in out
    assert "clamp(ceil(queueDepth / targetQueueDepthPerRelayer)" in " ".join(out.split())

    methods = kubectl(kube, "explain", "contractpolicy.spec.contracts.methods").stdout
    assert "transfer(address,uint256)" in methods
    chain = kubectl(kube, "explain", "rl.spec.network.chainId").stdout
    assert "Immutable" in chain
