"""Relayers for tests, the demo and benchmarks without the operator: provision one like the operator does (key
and AppRole in OpenBao, OZ `config.json`, env, funds), and run it on free ports with either engine (the real
OZ Relayer binary or the local stand-in, see `msq_devstack.engine`)."""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from eth_account import Account

from msq_devstack import engine as engines
from msq_devstack.chain import ANVIL_KEYS, Chain
from msq_devstack.openbao import OpenBao
from msq_devstack.process import ManagedProcess, free_port
from msq_operator.oz_config import (
    ENV_VAULT_ROLE_ID,
    ENV_VAULT_SECRET_ID,
    ENV_WEBHOOK_SIGNING_KEY,
    OzRelayerParams,
    RelayerPolicies,
    VaultSignerParams,
    build_oz_config,
)
from msq_operator.vault import ensure_approle, ensure_relayer_key

# The env var through which the dev relayer is told which address its Vault key must derive.
ENV_EXPECTED_ADDRESS = "MSQ_EXPECTED_SIGNER_ADDRESS"
# OZ refuses a config without a notification; with no receiver to point at, use the discard port, where
# nothing listens and deliveries fail fast.
DISCARD_WEBHOOK_URL = "http://127.0.0.1:9/discard"
DEFAULT_FUNDING_WEI = 100 * 10**18


@dataclass
class LocalRelayer:
    name: str
    url: str
    metrics_url: str
    api_key: str
    relayer_id: str
    process: ManagedProcess

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        """SIGKILL, no clean-up: what a crashed pod looks like."""
        proc = self.process.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        proc.wait(10)


def _ready(url: str) -> bool:
    return httpx.get(f"{url}/api/v1/ready", timeout=2).status_code == 200


def start_relayer(
    config_dir: Path,
    env: dict[str, str],
    log_dir: Path,
    name: str,
    timeout: float = 60,
    engine: engines.Engine = "dev",
) -> LocalRelayer:
    """Run a relayer of `engine` with `CONFIG_DIR=config_dir` on free ports; return once /api/v1/ready
    answers 200."""
    app_port, metrics_port = free_port(), free_port()
    config = json.loads((config_dir / "config.json").read_text())
    full_env = {
        **env,
        "CONFIG_DIR": str(config_dir),
        "APP_PORT": str(app_port),
        "METRICS_PORT": str(metrics_port),
        "HOST": "127.0.0.1",
        "METRICS_ENABLED": "true",
    }
    proc = ManagedProcess(
        name, engines.relayer_argv(engine), log_dir, env=full_env, cwd=config_dir.parent
    ).start()
    url = f"http://127.0.0.1:{app_port}"
    proc.wait_ready(lambda: _ready(url), timeout)
    return LocalRelayer(
        name=name,
        url=url,
        metrics_url=f"http://127.0.0.1:{metrics_port}/metrics",
        api_key=env["API_KEY"],
        relayer_id=config["relayers"][0]["id"],
        process=proc,
    )


def _rpc(url: str, method: str, params: list[object]) -> object:
    reply = httpx.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, timeout=10
    ).json()
    if "error" in reply:
        raise RuntimeError(f"{method}: {reply['error']}")
    return reply["result"]


def fund(
    chain: Chain, address: str, amount_wei: int, funder_key: str = ANVIL_KEYS[0], timeout: float = 30
) -> None:
    """Top `address` up to at least `amount_wei` with a real transfer from a funded anvil account."""
    balance = int(str(_rpc(chain.rpc_url, "eth_getBalance", [address, "latest"])), 16)
    if balance >= amount_wei:
        return
    funder = Account.from_key(funder_key)
    nonce = int(str(_rpc(chain.rpc_url, "eth_getTransactionCount", [funder.address, "pending"])), 16)
    gas_price = int(str(_rpc(chain.rpc_url, "eth_gasPrice", [])), 16)
    signed = funder.sign_transaction(
        {
            "chainId": chain.chain_id,
            "nonce": nonce,
            "to": address,
            "gas": 21_000,
            "value": amount_wei - balance,
            "gasPrice": 2 * gas_price,
        }
    )
    tx_hash = _rpc(chain.rpc_url, "eth_sendRawTransaction", ["0x" + signed.raw_transaction.hex()])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        receipt = _rpc(chain.rpc_url, "eth_getTransactionReceipt", [tx_hash])
        if isinstance(receipt, dict):
            if int(receipt["status"], 16) != 1:
                raise RuntimeError(f"funding transfer to {address} reverted")
            return
        time.sleep(0.1)
    raise TimeoutError(f"funding transfer to {address} not mined in {timeout:.0f}s")


def provision_relayer(
    openbao: OpenBao,
    redis_url: str,
    chain: Chain,
    *,
    relayer_id: str,
    work_dir: Path,
    webhook_url: str | None = None,
    funder_key: str = ANVIL_KEYS[0],
    funding_wei: int = DEFAULT_FUNDING_WEI,
    policies: RelayerPolicies | None = None,
    required_confirmations: int = 1,
    eip1559: bool = True,
) -> tuple[Path, dict[str, str]]:
    """Do for one relayer what the operator does: key once in KV v2, a read-one-path AppRole, the OZ
    config.json (secrets as env references), the env of the pod; then fund the address.

    Returns the config folder (`CONFIG_DIR`) and the environment to run the relayer with.
    """
    client = openbao.client()
    key_path = f"relayers/{relayer_id}"
    address = ensure_relayer_key(client, openbao.kv_mount, key_path)
    creds = ensure_approle(
        client,
        role_name=f"relayer-{relayer_id}",
        policy_name=f"relayer-{relayer_id}",
        mount=openbao.kv_mount,
        key_path=key_path,
    )
    params = OzRelayerParams(
        relayer_id=relayer_id,
        network="anvil",
        chain_id=chain.chain_id,
        rpc_urls=(chain.rpc_url,),
        eip1559=eip1559,
        required_confirmations=required_confirmations,
        signer=VaultSignerParams(
            vault_address=openbao.addr,
            key_name=key_path,
            mount_point=openbao.kv_mount,
            relayer_address=address,
        ),
        webhook_url=webhook_url or DISCARD_WEBHOOK_URL,
        policies=policies or RelayerPolicies(),
        average_blocktime_ms=1000,
        is_testnet=True,
    )
    config_dir = work_dir / relayer_id / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "config.json").write_text(json.dumps(build_oz_config(params), indent=2))
    env = {
        "API_KEY": secrets.token_urlsafe(32),
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": f"msq-{relayer_id}",
        # As the operator renders it: transactions kept in Redis, encrypted (render/relayer.py).
        "REPOSITORY_STORAGE_TYPE": "redis",
        "STORAGE_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        ENV_VAULT_ROLE_ID: creds.role_id,
        ENV_VAULT_SECRET_ID: creds.secret_id,
        ENV_WEBHOOK_SIGNING_KEY: secrets.token_urlsafe(32),
        ENV_EXPECTED_ADDRESS: address,
    }
    if funding_wei > 0:
        fund(chain, address, funding_wei, funder_key)
    return config_dir, env
