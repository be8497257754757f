"""A namespace with everything a RelayerPool needs, on the local stack: Secrets, CRDs, contracts on anvil,
the operator process and the local pod runner. The demo and the end-to-end tests build on it."""

from __future__ import annotations

import secrets
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from kubernetes import client, config
from web3 import Web3

from msq_contracts.deploy import deploy_forwarder, deploy_sample_nft, deploy_sample_token
from msq_contracts.forward_request import ForwarderDomain
from msq_devstack.chain import ANVIL_KEYS
from msq_devstack.engine import Engine
from msq_devstack.operator import OperatorProcess
from msq_devstack.overlay import NFT_NAME, TOKEN_NAME, LocalEndpoints, LocalOverlay, write_local_overlay
from msq_devstack.pods import LocalPods
from msq_devstack.prometheus import ScrapeJob
from msq_devstack.relayers import fund
from msq_devstack.stack import Stack
from msq_devstack.tools import REPO_ROOT
from msq_devstack.traffic import GatewayClient
from msq_operator.faults import ENV as FAULTS_ENV

GROUP, VERSION = "relayer.msq.io", "v1alpha1"
VAULT_AUTH_SECRET = "vault-operator-token"
REDIS_SECRET = "relayer-redis"
API_KEYS_SECRET = "gateway-api-keys"
CLIENT_NAME = "payments-service"
FORWARDER_NAME = "MSQForwarder"
DEPLOYER_KEY = ANVIL_KEYS[0]
FUNDER_KEY = ANVIL_KEYS[1]


def _host_port(url: str) -> str:
    return urlparse(url).netloc


def apply_crds(kubectl_argv: list[str], api: client.ApiClient, timeout: float = 60) -> None:
    subprocess.run(
        [*kubectl_argv, "apply", "--server-side", "-f", str(REPO_ROOT / "crds")],
        check=True,
        capture_output=True,
        timeout=120,
    )
    ext = client.ApiextensionsV1Api(api)
    deadline = time.monotonic() + timeout
    for plural in ("relayerpools", "relayers", "contractpolicies"):
        while True:
            conds = ext.read_custom_resource_definition(f"{plural}.{GROUP}").status.conditions or []
            if any(c.type == "Established" and c.status == "True" for c in conds):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {plural}.{GROUP} not established")
            time.sleep(0.2)


def pool_manifest(
    name: str,
    *,
    replicas: int,
    vault_addr: str,
    rpc_url: str,
    chain_id: int,
    forwarder: str,
    autoscaling: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    routing: str = "RoundRobin",
    funding: dict[str, str] | None = None,
    relayer: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`relayer` is the pool's relayer template (spec.relayer), left to the CRD's defaults when None."""
    spec: dict[str, Any] = {
        "network": {"name": "anvil", "chainId": chain_id, "rpcUrls": [rpc_url], "requiredConfirmations": 1},
        "replicas": replicas,
        "signer": {
            "vaultAddress": vault_addr,
            "auth": {"method": "Token", "secretRef": {"name": VAULT_AUTH_SECRET}},
        },
        "redis": {"urlSecretRef": {"name": REDIS_SECRET}},
        "gateway": {
            "routing": routing,
            "apiKeysSecretRef": {"name": API_KEYS_SECRET},
            "forwarder": {"address": forwarder, "name": FORWARDER_NAME},
        },
    }
    if autoscaling:
        spec["autoscaling"] = autoscaling
    if funding:
        spec["funding"] = funding
    if relayer:
        spec["relayer"] = relayer
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "RelayerPool",
        "metadata": {"name": name, "labels": labels or {"app": name}},
        "spec": spec,
    }


def contract_policy_manifest(
    name: str,
    *,
    pool_labels: dict[str, str],
    contracts: list[dict[str, Any]],
    quotas: list[dict[str, Any]] | None = None,
    blocked: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ContractPolicy",
        "metadata": {"name": name},
        "spec": {
            "poolSelector": {"matchLabels": pool_labels},
            "contracts": contracts,
            "quotas": quotas or [],
            "blockedUsers": blocked or [],
        },
    }


def create_pool_secrets(
    api: client.ApiClient, namespace: str, vault_token: str, redis_url: str, api_keys: dict[str, str]
) -> None:
    """The Secrets a pool made by `pool_manifest` refers to: Vault auth, Redis URL, gateway API keys."""
    core = client.CoreV1Api(api)
    for name, data in (
        (VAULT_AUTH_SECRET, {"token": vault_token}),
        (REDIS_SECRET, {"url": redis_url}),
        (API_KEYS_SECRET, api_keys),
    ):
        core.create_namespaced_secret(
            namespace, client.V1Secret(metadata=client.V1ObjectMeta(name=name), string_data=data)
        )


@dataclass
class Contracts:
    forwarder: str
    token: str
    nft: str


@dataclass
class PoolScenario:
    stack: Stack
    namespace: str
    api: client.ApiClient
    w3: Web3
    contracts: Contracts
    api_key: str
    operator: OperatorProcess
    pods: LocalPods
    work_dir: Path
    _started: list[Any] = field(default_factory=list)
    operator_runs: int = 1

    @classmethod
    def start(
        cls, stack: Stack, namespace: str, work_dir: Path, engine: Engine | None = None
    ) -> PoolScenario:
        """`engine`: the relayer engine of the pods (default: `msq_devstack.engine.selected()`)."""
        assert stack.kube and stack.openbao and stack.redis and stack.chain
        api = config.new_client_from_config(config_file=str(stack.kube.kubeconfig))
        core = client.CoreV1Api(api)
        apply_crds(stack.kube.kubectl_argv(), api)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
        api_key = secrets.token_urlsafe(32)
        create_pool_secrets(api, namespace, stack.openbao.root_token, stack.redis.url, {CLIENT_NAME: api_key})
        w3 = Web3(Web3.HTTPProvider(stack.chain.rpc_url))
        forwarder = deploy_forwarder(w3, DEPLOYER_KEY, FORWARDER_NAME)
        contracts = Contracts(
            forwarder=forwarder,
            token=deploy_sample_token(w3, DEPLOYER_KEY, forwarder),
            nft=deploy_sample_nft(w3, DEPLOYER_KEY, forwarder),
        )
        operator = OperatorProcess(
            stack.kube.operator_kubeconfig,
            stack.log_dir,
            namespaces=[namespace],
            name=f"operator-{namespace}",
        ).start()
        pods = LocalPods(api, namespace, stack.log_dir, work_dir / "pods", engine=engine).start()
        return cls(stack, namespace, api, w3, contracts, api_key, operator, pods, work_dir)

    def stop(self) -> None:
        self.pods.stop()
        self.operator.stop()

    def restart_operator(self, kill_at: str = "") -> OperatorProcess:
        """Stop the operator and start a new one; `kill_at` names the points where that one kills itself
        with SIGKILL (msq_operator.faults)."""
        assert self.stack.kube
        self.operator.stop()
        self.operator_runs += 1
        self.operator = OperatorProcess(
            self.stack.kube.operator_kubeconfig,
            self.stack.log_dir,
            namespaces=[self.namespace],
            name=f"operator-{self.namespace}-{self.operator_runs}",
            env={FAULTS_ENV: kill_at} if kill_at else None,
        ).start()
        return self.operator

    def operator_died_by_sigkill(self, timeout: float = 90) -> bool:
        proc = self.operator.process.proc
        assert proc is not None
        try:
            return proc.wait(timeout) == -signal.SIGKILL
        except subprocess.TimeoutExpired:
            return False

    # -- manifests ------------------------------------------------------------------------------------------

    def pool_manifest(
        self,
        name: str,
        replicas: int,
        autoscaling: dict[str, Any] | None = None,
        routing: str = "RoundRobin",
        funding: dict[str, str] | None = None,
        relayer: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        assert self.stack.openbao and self.stack.chain
        return pool_manifest(
            name,
            replicas=replicas,
            vault_addr=self.stack.openbao.addr,
            rpc_url=self.stack.chain.rpc_url,
            chain_id=self.stack.chain.chain_id,
            forwarder=self.contracts.forwarder,
            autoscaling=autoscaling,
            routing=routing,
            funding=funding,
            relayer=relayer,
        )

    def policy_manifest(self, name: str, pool_labels: dict[str, str]) -> dict[str, Any]:
        """Gasless token transfers and open NFT mints, on the sample contracts."""
        return contract_policy_manifest(
            name,
            pool_labels=pool_labels,
            contracts=[
                {
                    "address": self.contracts.token,
                    "name": "sample-token",
                    "methods": ["transfer(address,uint256)"],
                    "direct": False,
                    "gasless": True,
                },
                {"address": self.contracts.nft, "name": "sample-nft", "methods": ["mint(address)"]},
            ],
        )

    def create(self, plural: str, body: dict[str, Any]) -> None:
        client.CustomObjectsApi(self.api).create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, body
        )

    # -- reading -------------------------------------------------------------------------------------------

    def get(self, plural: str, name: str) -> dict[str, Any]:
        return client.CustomObjectsApi(self.api).get_namespaced_custom_object(  # type: ignore[no-any-return]
            GROUP, VERSION, self.namespace, plural, name
        )

    def relayers(self, pool: str) -> list[dict[str, Any]]:
        return client.CustomObjectsApi(self.api).list_namespaced_custom_object(  # type: ignore[no-any-return]
            GROUP, VERSION, self.namespace, "relayers", label_selector=f"relayer.msq.io/pool={pool}"
        )["items"]

    def addresses(self, pool: str) -> list[str]:
        """The addresses of the pool's relayers that have their key."""
        return [r["status"]["address"] for r in self.relayers(pool) if (r.get("status") or {}).get("address")]

    def fund_relayers(self, pool: str, amount_wei: int = 10**20) -> list[str]:
        assert self.stack.chain
        addresses = self.addresses(pool)
        for address in addresses:
            fund(self.stack.chain, address, amount_wei, FUNDER_KEY)
        return addresses

    def create_funded_pool(
        self,
        name: str,
        replicas: int,
        autoscaling: dict[str, Any] | None = None,
        ready_timeout: float = 180,
        funding: dict[str, str] | None = None,
        relayer: dict[str, Any] | None = None,
    ) -> list[str]:
        """Create a pool, wait for its relayers' keys, fund them and wait for the pool to be Ready; returns
        the funded addresses."""
        body = self.pool_manifest(
            name, replicas=replicas, autoscaling=autoscaling, funding=funding, relayer=relayer
        )
        self.create("relayerpools", body)
        return self.fund_when_keyed(name, ready_timeout)

    def apply_local_overlay(self) -> LocalOverlay:
        """`kubectl apply -k` of k8s/overlays/local (its pool and policy) with this stack's endpoints."""
        assert self.stack.kube and self.stack.openbao and self.stack.redis and self.stack.chain
        overlay = write_local_overlay(
            self.work_dir / "overlay",
            LocalEndpoints(
                rpc_url=self.stack.chain.rpc_url,
                vault_addr=self.stack.openbao.addr,
                vault_token=self.stack.openbao.root_token,
                redis_url=self.stack.redis.url,
                forwarder=self.contracts.forwarder,
                contracts={TOKEN_NAME: self.contracts.token, NFT_NAME: self.contracts.nft},
            ),
        )
        done = subprocess.run(
            self.stack.kube.kubectl_argv("-n", self.namespace, "apply", "-k", str(overlay.path)),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"kubectl apply -k {overlay.path}: {done.stderr.strip()}")
        return overlay

    def fund_when_keyed(self, pool: str, ready_timeout: float = 180) -> list[str]:
        """Wait for every relayer of `pool` to have its key, fund them and wait for the pool to be Ready;
        returns the funded addresses."""
        replicas = self.get("relayerpools", pool)["spec"]["replicas"]
        self.wait("relayer addresses", lambda: len(self.addresses(pool)) == replicas)
        addresses = self.fund_relayers(pool)
        self.wait("pool Ready", lambda: self.pool_ready(pool), timeout=ready_timeout)
        return addresses

    def wait(self, what: str, fn: Any, timeout: float = 120, interval: float = 0.25) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = fn()
            if result:
                return result
            time.sleep(interval)
        raise TimeoutError(f"{what}: not reached in {timeout}s (pod runner errors: {self.pods.errors[-3:]})")

    def pool_ready(self, pool: str) -> bool:
        obj = self.get("relayerpools", pool)
        conds = (obj.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

    def gateway(self, pool: str, api_key: str | None = None) -> GatewayClient:
        url = self.wait(
            "gateway endpoint",
            lambda: (
                (self.get("relayerpools", pool).get("status") or {})
                .get("gatewayEndpoint", "")
                .startswith("http://127.0.0.1")
                and self.get("relayerpools", pool)["status"]["gatewayEndpoint"]
            ),
        )
        return GatewayClient.open(url, api_key or self.api_key)

    def scrape_jobs(self, pool: str, gateway_url: str) -> list[ScrapeJob]:
        """What the chart's monitors scrape, as static targets: the operator (ServiceMonitor, `honorLabels`,
        since its series name the pool's namespace), the pool's gateway (PodMonitor: the pod's namespace and
        the `pool` label), and the pool's relayers (OZ's Prometheus text)."""
        relayers = {r["metadata"]["name"] for r in self.relayers(pool)}
        return [
            ScrapeJob("operator", [_host_port(self.operator.metrics_url)], honor_labels=True),
            ScrapeJob(
                "gateway", [_host_port(gateway_url)], labels={"namespace": self.namespace, "pool": pool}
            ),
            ScrapeJob(
                "relayers",
                [
                    f"127.0.0.1:{pod.metrics_port}"
                    for name, pod in sorted(self.pods.pods.items())
                    if pod.metrics_port is not None and name in relayers
                ],
                metrics_path="/debug/metrics/scrape",
                labels={"namespace": self.namespace, "pool": pool},
            ),
        ]

    def domain(self) -> ForwarderDomain:
        assert self.stack.chain
        return ForwarderDomain(
            name=FORWARDER_NAME,
            chain_id=self.stack.chain.chain_id,
            verifying_contract=self.contracts.forwarder,
        )
