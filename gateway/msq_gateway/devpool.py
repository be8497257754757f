"""A local pool for tests, benchmarks and demos: dev relayers provisioned like the operator does, behind this
gateway running as its own process, all on 127.0.0.1.

The gateway reads its config from a file with relayer secrets in files beside it, as it does from a mounted
ConfigMap and Secret in a cluster; `LocalPool.apply()` rewrites the file and waits for the gateway to load it.
"""

from __future__ import annotations

import copy
import hashlib
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from msq_devstack.chain import ANVIL_KEYS, Chain
from msq_devstack.openbao import OpenBao
from msq_devstack.process import ManagedProcess, free_port
from msq_devstack.relayers import (
    ENV_EXPECTED_ADDRESS,
    LocalRelayer,
    provision_relayer,
    start_relayer,
)
from msq_gateway.config import API_VERSION, KIND
from msq_operator.oz_config import ENV_WEBHOOK_SIGNING_KEY


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class PoolRelayer:
    relayer_id: str
    config_dir: Path
    env: dict[str, str]
    address: str
    process: LocalRelayer | None = None
    draining: bool = False

    @property
    def api_key(self) -> str:
        return self.env["API_KEY"]

    @property
    def url(self) -> str:
        assert self.process is not None
        return self.process.url

    def status(self, timeout: float = 5) -> dict[str, Any]:
        resp = httpx.get(
            f"{self.url}/api/v1/relayers/{self.relayer_id}/status",
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=timeout,
        )
        resp.raise_for_status()
        return resp.json()["data"]  # type: ignore[no-any-return]


@dataclass
class LocalPool:
    name: str
    chain: Chain
    redis_url: str
    openbao: OpenBao
    work_dir: Path
    log_dir: Path
    size: int
    forwarder: str
    forwarder_name: str = "MSQForwarder"
    policies: list[dict[str, Any]] = field(default_factory=list)
    api_keys: list[dict[str, Any]] = field(default_factory=list)
    quotas: list[dict[str, Any]] = field(default_factory=list)
    routing: str = "RoundRobin"
    limits: dict[str, Any] = field(default_factory=dict)
    status_refresh_seconds: float = 0.2
    # Raw entries appended to the config's relayer list (e.g. endpoints that are not dev relayers).
    extra_relayers: list[dict[str, Any]] = field(default_factory=list)
    relayer_funding_wei: int = 100 * 10**18
    gateway_log_level: str = "warning"
    # The relayer engine: "oz" (the real binary) or "dev" (the stand-in); see msq_devstack.engine.
    engine: str = "dev"
    relayers: list[PoolRelayer] = field(default_factory=list)
    gateway_port: int = 0
    gateway: ManagedProcess | None = None
    replicas: list[ManagedProcess] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def config_path(self) -> Path:
        return self.work_dir / "gateway" / "gateway.yaml"

    # --- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> LocalPool:
        self.gateway_port = self.gateway_port or free_port()
        (self.work_dir / "gateway" / "secrets").mkdir(parents=True, exist_ok=True)
        webhook = f"{self.url}/api/v1/webhooks/relayer"
        # Sequential: provisioning funds each relayer from one anvil account, whose nonces must not race.
        for i in range(self.size):
            rid = f"{self.name}-{i}"
            config_dir, env = provision_relayer(
                self.openbao,
                self.redis_url,
                self.chain,
                relayer_id=rid,
                work_dir=self.work_dir / "relayers",
                webhook_url=webhook,
                funding_wei=self.relayer_funding_wei,
            )
            self.relayers.append(PoolRelayer(rid, config_dir, env, env[ENV_EXPECTED_ADDRESS]))
        with ThreadPoolExecutor(max_workers=max(1, min(8, self.size))) as ex:
            list(ex.map(self._start_relayer, self.relayers))
        self.write_config()
        self.gateway = self._start_gateway(self.gateway_port)
        return self

    def _start_gateway(self, port: int, name: str = "") -> ManagedProcess:
        proc = ManagedProcess(
            f"gateway-{self.name}{name}",
            [
                sys.executable,
                "-m",
                "msq_gateway.cli",
                "--config",
                str(self.config_path),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--watch-interval",
                "0.2",
                "--log-level",
                self.gateway_log_level,
            ],
            self.log_dir,
        ).start()
        url = f"http://127.0.0.1:{port}"
        proc.wait_ready(lambda: httpx.get(f"{url}/readyz", timeout=2).status_code == 200, 60)
        return proc

    def add_gateway_replica(self) -> str:
        """One more gateway process on the same config and Redis (a second pod of the Deployment); its URL."""
        port = free_port()
        self.replicas.append(self._start_gateway(port, f"-replica{len(self.replicas) + 1}"))
        return f"http://127.0.0.1:{port}"

    def _start_relayer(self, r: PoolRelayer) -> None:
        engine = "oz" if self.engine == "oz" else "dev"
        r.process = start_relayer(r.config_dir, r.env, self.log_dir, r.relayer_id, engine=engine)

    def stop(self) -> None:
        for replica in self.replicas:
            replica.stop()
        if self.gateway is not None:
            self.gateway.stop()
        for r in self.relayers:
            if r.process is not None:
                r.process.stop()

    def kill_relayer(self, index: int) -> None:
        """SIGKILL one relayer, as a crashed pod."""
        r = self.relayers[index]
        assert r.process is not None
        r.process.kill()

    def restart_relayer(self, index: int) -> None:
        """Start a killed relayer again (same key, same Redis prefix: it resumes its queue). Its port changes,
        so the gateway config is rewritten, as a new pod IP behind a Service would be invisible anyway."""
        r = self.relayers[index]
        self._start_relayer(r)
        self.apply()

    # --- gateway config -----------------------------------------------------------------------------------

    def config_doc(self) -> dict[str, Any]:
        secrets = self.work_dir / "gateway" / "secrets"
        relayers = []
        for r in self.relayers:
            (secrets / f"{r.relayer_id}.api-key").write_text(r.api_key)
            (secrets / f"{r.relayer_id}.signing-key").write_text(r.env[ENV_WEBHOOK_SIGNING_KEY])
            relayers.append(
                {
                    "id": r.relayer_id,
                    "url": r.url if r.process else "http://127.0.0.1:9",
                    "apiKeyFile": f"secrets/{r.relayer_id}.api-key",
                    "webhookSigningKeyFile": f"secrets/{r.relayer_id}.signing-key",
                    "draining": r.draining,
                }
            )
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "chain": {"chainId": self.chain.chain_id, "rpcUrl": self.chain.rpc_url},
            "forwarder": {"address": self.forwarder, "name": self.forwarder_name},
            "relayers": relayers + copy.deepcopy(self.extra_relayers),
            "routing": {"strategy": self.routing, "statusRefreshSeconds": self.status_refresh_seconds},
            "apiKeys": copy.deepcopy(self.api_keys),
            "quotas": copy.deepcopy(self.quotas),
            "policies": copy.deepcopy(self.policies),
            "redis": {"url": self.redis_url, "keyPrefix": f"msq-gw-{self.name}"},
            "limits": dict(self.limits),
        }

    def write_config(self) -> bytes:
        text = yaml.safe_dump(self.config_doc(), sort_keys=False).encode()
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_bytes(text)
        os.replace(tmp, self.config_path)  # atomic, like a kubelet ConfigMap swap
        return text

    def config_version(self) -> str | None:
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        for line in text.splitlines():
            if line.startswith("msq_gateway_config_info{"):
                return line.split('version="', 1)[1].split('"', 1)[0]
        return None

    def apply(self, timeout: float = 15) -> None:
        """Write the config and wait until the gateway serves it (and has polled the relayers once more)."""
        self.write_config()
        from msq_gateway.config import read_config_file
        from msq_gateway.runtime import config_version as version_of

        expected = version_of(self.config_path, read_config_file(self.config_path))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.config_version() == expected:
                time.sleep(2.5 * self.status_refresh_seconds)
                return
            time.sleep(0.05)
        raise TimeoutError(f"gateway did not load config version {expected} in {timeout}s")

    # --- chain helpers ------------------------------------------------------------------------------------

    def chain_nonces(self) -> dict[str, int]:
        """Each relayer's mined transaction count (its next on-chain nonce)."""
        out = {}
        for r in self.relayers:
            reply = httpx.post(
                self.chain.rpc_url,
                json={
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "eth_getTransactionCount",
                    "params": [r.address, "latest"],
                },
                timeout=5,
            ).json()
            out[r.relayer_id] = int(reply["result"], 16)
        return out


@dataclass(frozen=True)
class Samples:
    forwarder: str
    token: str
    nft: str
    deployer_key: str


def deploy_samples(
    chain: Chain, deployer_key: str = ANVIL_KEYS[0], forwarder_name: str = "MSQForwarder"
) -> Samples:
    """The forwarder, an ERC-20 (owner: the deployer) and an open-mint ERC-721, both trusting it."""
    from web3 import Web3

    from msq_contracts.deploy import deploy_forwarder, deploy_sample_nft, deploy_sample_token

    w3 = Web3(Web3.HTTPProvider(chain.rpc_url))
    forwarder = deploy_forwarder(w3, deployer_key, forwarder_name)
    token = deploy_sample_token(w3, deployer_key, forwarder)
    nft = deploy_sample_nft(w3, deployer_key, forwarder)
    return Samples(forwarder=str(forwarder), token=str(token), nft=str(nft), deployer_key=deployer_key)
