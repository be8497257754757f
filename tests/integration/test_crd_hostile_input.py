"""Hostile custom resources against the real API server: every string, list and map a platform engineer's
manifests set (a pool, the Relayer the operator renders from it, a contract policy) is in turn made huge
(a 1 MiB string, a list or a map far past its bound, a non-ASCII string where a pattern applies), and each
variant must be refused by the CRD's own schema with a 422 that names the field. A refused object never
reaches the operator. The counts (tried, refused, 5xx seen) are printed as JSON; no 5xx is allowed."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from msq_operator.render.pool import build_relayer
from msq_operator.resources.pool import RelayerPoolSpec
from tests.support import manifests
from tests.support.kube import GROUP, VERSION, crds_api

MIB_STRING = "x" * 2**20
NAMESPACE = "default"

api = crds_api


def _pool() -> dict[str, Any]:
    body = manifests.pool(
        "hostile",
        replicas=2,
        vault_addr="http://127.0.0.1:8200",
        rpc_url="http://127.0.0.1:8545",
        chain_id=31337,
        forwarder="0x5FbDB2315678afecb367f032d93F642f64180aa3",
        autoscaling={"mode": "Internal", "minReplicas": 1, "maxReplicas": 4},
        funding={"minBalance": "1", "targetBalance": "2", "dailyCap": "10"},
    )
    body["spec"]["relayer"] = {
        "policies": {"whitelistReceivers": ["0x5FbDB2315678afecb367f032d93F642f64180aa3"]},
        "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "512Mi"}},
    }
    return body


def _relayer() -> dict[str, Any]:
    pool = _pool()
    pool["metadata"] |= {"namespace": NAMESPACE, "uid": "00000000-0000-0000-0000-000000000001"}
    relayer = build_relayer(pool, RelayerPoolSpec.model_validate(pool["spec"]), 0, draining=False)
    relayer["metadata"].pop("ownerReferences", None)
    return relayer


def _policy() -> dict[str, Any]:
    return manifests.contract_policy(
        "hostile",
        pool_labels={"app": "hostile"},
        contracts=[
            {
                "address": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
                "name": "sample-token",
                "methods": ["transfer(address,uint256)"],
                "direct": False,
                "gasless": True,
            }
        ],
    )


BASES = {"relayerpools": _pool, "relayers": _relayer, "contractpolicies": _policy}


def _leaves(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, f"{path}.{k}")
    elif isinstance(node, list) and node:
        yield from _leaves(node[0], f"{path}[0]")


def _set(obj: dict[str, Any], path: str, value: Any) -> None:
    parts = path.replace("[0]", ".0").split(".")
    target: Any = obj
    for p in parts[:-1]:
        target = target[int(p)] if p.isdigit() else target[p]
    last = parts[-1]
    if last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value


def _hostile(plural: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(field, what, object) for every string, list and map the base object sets in its spec."""
    base = BASES[plural]()
    for path, value in _leaves(base["spec"], "spec"):
        variants: list[tuple[str, Any]] = []
        if isinstance(value, str):
            variants = [("1 MiB string", MIB_STRING)]
        elif isinstance(value, list) and value:
            variants = [("10,000 items", [copy.deepcopy(value[0]) for _ in range(10_000)])]
        elif (
            isinstance(value, dict)
            and value
            and path.rsplit(".", 1)[-1] in {"matchLabels", "requests", "limits"}
        ):
            first = next(iter(value.values()))
            variants = [("1,000 keys", {f"k{i}": first for i in range(1_000)})]
        for what, hostile in variants:
            obj = copy.deepcopy(base)
            _set(obj, path, hostile)
            yield path, what, obj


CASES = [(plural, *case) for plural in BASES for case in _hostile(plural)]


def test_every_hostile_variant_is_refused_by_the_schema_naming_its_field(api: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api)
    tried = refused = server_errors = 0
    accepted: list[str] = []
    unnamed: list[str] = []
    for plural, field, what, obj in CASES:
        tried += 1
        try:
            custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, plural, obj, dry_run="All")
        except ApiException as e:
            if e.status >= 500:
                server_errors += 1
            if e.status == 422:
                refused += 1
                message = json.loads(e.body).get("message", "")
                if field not in message:
                    unnamed.append(f"{plural} {field} ({what}): {message[:300]}")
            continue
        accepted.append(f"{plural} {field} ({what})")
    print(json.dumps({"tried": tried, "refused": refused, "server_errors": server_errors}))
    assert server_errors == 0
    assert not accepted, accepted
    assert not unnamed, unnamed
    assert tried == refused > 30


@pytest.mark.parametrize("plural", sorted(BASES))
def test_the_base_objects_themselves_are_valid(api: client.ApiClient, plural: str) -> None:
    # Otherwise every refusal above could be for a reason that is not the hostile field.
    obj = BASES[plural]()
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, plural, obj, dry_run="All"
    )
