"""anvil: a real EVM chain with automine."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx

from msq_devstack import tools
from msq_devstack.process import ManagedProcess, free_port

# anvil's well-known mnemonic accounts; funded test money, never a secret.
ANVIL_KEYS = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
]


@dataclass
class Chain:
    rpc_url: str
    chain_id: int
    process: ManagedProcess

    def stop(self) -> None:
        self.process.stop()


def _rpc(url: str, method: str, params: list | None = None) -> object:
    r = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}, timeout=2)
    r.raise_for_status()
    return r.json()["result"]


def start_chain(log_dir: Path, chain_id: int = 31337, timeout: float = 30) -> Chain:
    port = free_port()
    proc = ManagedProcess(
        "anvil",
        [
            tools.anvil(),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--chain-id",
            str(chain_id),
            "--accounts",
            "10",
            "--balance",
            "1000000",
        ],
        log_dir,
    ).start()
    url = f"http://127.0.0.1:{port}"
    proc.wait_ready(lambda: int(str(_rpc(url, "eth_chainId")), 16) == chain_id, timeout)
    return Chain(rpc_url=url, chain_id=chain_id, process=proc)
