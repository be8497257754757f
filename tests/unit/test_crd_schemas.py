"""Static checks of crds/: every field documented (kubectl explain teaches), the subresources and names an
operator needs, bounded strings, lists and maps (the CEL cost estimator relies on them, and hostile input
meets a limit: tests/integration/test_crd_hostile_input.py), and the copies of the shared sub-schemas kept
identical."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CRD_FILES = sorted((REPO / "crds").glob("*.yaml"))
Schema = dict[str, Any]


def load(name: str) -> dict[str, Any]:
    crd: dict[str, Any] = yaml.safe_load((REPO / "crds" / name).read_text())
    return crd


def schema(crd: dict[str, Any]) -> Schema:
    (version,) = crd["spec"]["versions"]
    root: Schema = version["schema"]["openAPIV3Schema"]
    return root


def walk(node: Schema, path: str) -> Iterator[tuple[str, Schema]]:
    """Every sub-schema below `node` with its path: properties, list items and map values."""
    for name, sub in node.get("properties", {}).items():
        yield f"{path}.{name}", sub
        yield from walk(sub, f"{path}.{name}")
    if "items" in node:
        yield f"{path}[]", node["items"]
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield f"{path}{{}}", node["additionalProperties"]
        yield from walk(node["additionalProperties"], f"{path}{{}}")


@pytest.fixture(params=[p.name for p in CRD_FILES])
def crd(request: pytest.FixtureRequest) -> dict[str, Any]:
    return load(request.param)


def test_the_three_crds_exist() -> None:
    assert [p.name for p in CRD_FILES] == ["contractpolicies.yaml", "relayerpools.yaml", "relayers.yaml"]


def test_every_field_has_a_description(crd: dict[str, Any]) -> None:
    root = schema(crd)
    assert root.get("description")
    kind = crd["spec"]["names"]["kind"]
    # The API server forbids anything but `type` on metadata (its schema is built in).
    missing = [
        path
        for path, sub in walk(root, kind)
        if path != f"{kind}.metadata" and not str(sub.get("description", "")).strip()
    ]
    assert missing == []


def test_names_scope_and_version(crd: dict[str, Any]) -> None:
    spec = crd["spec"]
    assert spec["group"] == "relayer.msq.io"
    assert spec["scope"] == "Namespaced"
    assert crd["metadata"]["name"] == f"{spec['names']['plural']}.relayer.msq.io"
    short = {"relayerpools": "rp", "relayers": "rl", "contractpolicies": "cp"}[spec["names"]["plural"]]
    assert spec["names"]["shortNames"] == [short]
    assert spec["names"]["categories"] == ["msq"]
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)


def test_status_subresource_and_printer_columns(crd: dict[str, Any]) -> None:
    (version,) = crd["spec"]["versions"]
    assert version["subresources"]["status"] == {}
    columns = version["additionalPrinterColumns"]
    assert columns[-1] == {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    ready = {"ContractPolicy": "Accepted"}.get(crd["spec"]["names"]["kind"], "Ready")
    assert f'.status.conditions[?(@.type=="{ready}")].status' in [c["jsonPath"] for c in columns]


def test_pool_scale_subresource() -> None:
    (version,) = load("relayerpools.yaml")["spec"]["versions"]
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    status = schema(load("relayerpools.yaml"))["properties"]["status"]["properties"]
    assert status["selector"]["type"] == "string"  # HPA and KEDA need the string form
    assert [(c["name"], c.get("priority", 0)) for c in version["additionalPrinterColumns"]] == [
        ("Network", 0),
        ("Ready", 0),
        ("Replicas", 0),
        ("Queue", 0),
        ("Mode", 1),
        ("Age", 0),
    ]


def test_conditions_are_the_standard_list_map(crd: dict[str, Any]) -> None:
    conditions = schema(crd)["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    item = conditions["items"]
    assert sorted(item["required"]) == ["lastTransitionTime", "message", "reason", "status", "type"]
    props = item["properties"]
    assert sorted(props) == [
        "lastTransitionTime",
        "message",
        "observedGeneration",
        "reason",
        "status",
        "type",
    ]
    assert props["status"]["enum"] == ["True", "False", "Unknown"]
    assert props["lastTransitionTime"]["format"] == "date-time"
    assert props["observedGeneration"]["format"] == "int64"


def test_spec_strings_and_lists_are_bounded(crd: dict[str, Any]) -> None:
    unbounded = []
    for path, sub in walk(schema(crd)["properties"]["spec"], "spec"):
        if sub.get("type") == "string" and "enum" not in sub and "maxLength" not in sub:
            unbounded.append(path)
        if sub.get("type") == "array" and "maxItems" not in sub:
            unbounded.append(path)
        # A resource quantity's pattern alone admits a megabyte of digits.
        if sub.get("x-kubernetes-int-or-string") and "maxLength" not in sub:
            unbounded.append(path)
        if isinstance(sub.get("additionalProperties"), dict) and "maxProperties" not in sub:
            unbounded.append(path)
    assert unbounded == []


def test_every_cel_rule_has_a_message(crd: dict[str, Any]) -> None:
    root = schema(crd)
    rules = [r for _, sub in walk(root, "") for r in sub.get("x-kubernetes-validations", [])]
    assert rules, "each CRD has cross-field rules"
    assert all(r.get("message") for r in rules), rules


def test_chain_id_is_immutable_in_both_network_copies() -> None:
    for name in ("relayerpools.yaml", "relayers.yaml"):
        chain_id = schema(load(name))["properties"]["spec"]["properties"]["network"]["properties"]["chainId"]
        assert chain_id["x-kubernetes-validations"] == [
            {"rule": "self == oldSelf", "message": "chainId is immutable"}
        ]


def test_relayer_copies_of_shared_schemas_match_the_pool() -> None:
    pool = schema(load("relayerpools.yaml"))["properties"]["spec"]["properties"]
    relayer = schema(load("relayers.yaml"))["properties"]["spec"]["properties"]
    assert relayer["network"] == pool["network"]
    assert relayer["signer"] == pool["signer"]
    for field in ("image", "resources", "policies"):
        assert relayer[field] == pool["relayer"]["properties"][field], field
    pool_ref = pool["redis"]["properties"]["urlSecretRef"]
    assert relayer["redis"]["properties"]["urlSecretRef"] == pool_ref


def test_conditions_schema_is_the_same_in_every_crd() -> None:
    items = [
        schema(load(p.name))["properties"]["status"]["properties"]["conditions"]["items"] for p in CRD_FILES
    ]
    assert all(i == items[0] for i in items)


def test_keda_example_scales_the_pool_through_its_scale_subresource() -> None:
    docs = list(yaml.safe_load_all((REPO / "k8s" / "examples" / "keda-scaledobject.yaml").read_text()))
    (scaled,) = [d for d in docs if d["kind"] == "ScaledObject"]
    assert scaled["spec"]["scaleTargetRef"] == {
        "apiVersion": "relayer.msq.io/v1alpha1",
        "kind": "RelayerPool",
        "name": "payments",
    }
    (trigger,) = scaled["spec"]["triggers"]
    # The backlog lives in OZ's per-status sorted sets, which KEDA's Redis scaler (list lengths) cannot
    # read: the trigger is the operator's own gauge of it, per relayer (AverageValue).
    assert trigger["type"] == "prometheus" and trigger["metricType"] == "AverageValue"
    assert "msq_operator_pool_queue_depth" in trigger["metadata"]["query"]
    assert 'pool="payments"' in trigger["metadata"]["query"]
    assert trigger["metadata"]["ignoreNullValues"] == "false"
