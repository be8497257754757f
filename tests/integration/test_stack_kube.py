"""The Kubernetes control plane is real: CRDs are served, schemas enforced, Deployments reconciled and owned
objects garbage-collected by kube-controller-manager, and kubectl talks to it."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from msq_devstack.kube import KubeControlPlane
from tests.support.kube import eventually


@pytest.fixture(scope="module")
def api(kube: KubeControlPlane) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kube.kubeconfig))


@pytest.fixture
def namespace(api: client.ApiClient) -> Iterator[str]:
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    client.CoreV1Api(api).delete_namespace(name)


WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.smoke.msq.io"},
    "spec": {
        "group": "smoke.msq.io",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {"size": {"type": "integer", "minimum": 1}},
                            }
                        },
                    }
                },
            }
        ],
    },
}


def test_crd_is_served_and_schema_enforced(api: client.ApiClient, namespace: str) -> None:
    ext = client.ApiextensionsV1Api(api)
    ext.create_custom_resource_definition(WIDGET_CRD)
    eventually(
        lambda: any(
            c.type == "Established" and c.status == "True"
            for c in (ext.read_custom_resource_definition("widgets.smoke.msq.io").status.conditions or [])
        )
    )
    objs = client.CustomObjectsApi(api)
    body = {
        "apiVersion": "smoke.msq.io/v1",
        "kind": "Widget",
        "metadata": {"name": "ok"},
        "spec": {"size": 3},
    }
    eventually(lambda: objs.create_namespaced_custom_object("smoke.msq.io", "v1", namespace, "widgets", body))
    listed = objs.list_namespaced_custom_object("smoke.msq.io", "v1", namespace, "widgets")
    assert [i["metadata"]["name"] for i in listed["items"]] == ["ok"]

    bad = {
        "apiVersion": "smoke.msq.io/v1",
        "kind": "Widget",
        "metadata": {"name": "bad"},
        "spec": {"size": "big"},
    }
    with pytest.raises(ApiException) as err:
        objs.create_namespaced_custom_object("smoke.msq.io", "v1", namespace, "widgets", bad)
    assert err.value.status == 422
    assert "spec.size" in err.value.body
    ext.delete_custom_resource_definition("widgets.smoke.msq.io")


def test_deployment_reconciled_and_garbage_collected(api: client.ApiClient, namespace: str) -> None:
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    ref = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid, block_owner_deletion=True
    )
    labels = {"app": "smoke"}
    apps.create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="owned", owner_references=[ref]),
            spec=client.V1DeploymentSpec(
                replicas=1,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(
                        containers=[client.V1Container(name="c", image="example.invalid/c:1")]
                    ),
                ),
            ),
        ),
    )
    # The deployment controller turns the Deployment into a ReplicaSet (and that into a Pod).
    eventually(lambda: apps.list_namespaced_replica_set(namespace).items)
    eventually(lambda: core.list_namespaced_pod(namespace).items)

    core.delete_namespaced_config_map("owner", namespace)

    def gone() -> bool:
        try:
            apps.read_namespaced_deployment("owned", namespace)
            return False
        except ApiException as e:
            return e.status == 404

    eventually(gone)
    eventually(lambda: not apps.list_namespaced_replica_set(namespace).items)


def test_kubectl_talks_to_the_api_server(kube: KubeControlPlane) -> None:
    out = subprocess.run(
        kube.kubectl_argv("get", "namespaces", "-o", "name"),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "namespace/default" in out.split()
    version = subprocess.run(
        kube.kubectl_argv("version", "-o", "json"), capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert '"gitVersion": "v1.35.4"' in version
