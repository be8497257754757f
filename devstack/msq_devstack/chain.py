"""anvil: a real EVM chain with automine, and by default an empty block every second as well (mixed mining),
since OZ Relayer counts a transaction confirmed only once later blocks exist."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
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
    block_time: float | None = None
    automine: bool = True

    def stop(self) -> None:
        self.process.stop()

    @contextmanager
    def congested(self) -> Iterator[None]:
        """No blocks at all while inside: every transaction sent waits in the mempool, as on a congested
        network where relayers accept faster than the chain includes. Mining resumes as before on exit."""
        self.pause()
        try:
            yield
        finally:
            self.resume()

    @contextmanager
    def on_demand(self) -> Iterator[None]:
        """Blocks only when a transaction arrives while inside (automine, no empty interval blocks): an idle
        chain's base fee then stays where it is, as a busy network holds it high. `pause()` inside stops
        mining; `on_demand_again()` takes it back up. Mining resumes as before on exit."""
        self.on_demand_again()
        try:
            yield
        finally:
            self.resume()

    def freeze(self) -> None:
        """SIGSTOP anvil: its RPC port still accepts connections but nothing answers and no block is made,
        as a node that hangs; its state (blocks, mempool, nonces) stays exactly as it was."""
        assert self.process.proc is not None
        os.killpg(self.process.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process.proc is not None
        os.killpg(self.process.proc.pid, signal.SIGCONT)

    def pause(self) -> None:
        _rpc(self.rpc_url, "evm_setAutomine", [False])
        _rpc(self.rpc_url, "evm_setIntervalMining", [0])

    def on_demand_again(self) -> None:
        _rpc(self.rpc_url, "evm_setAutomine", [True])  # replaces the interval mining mode

    def resume(self) -> None:
        # Automine first: setting it replaces the mining mode, which would drop a restored interval.
        _rpc(self.rpc_url, "evm_setAutomine", [self.automine])
        if self.block_time is not None:
            # The RPC takes whole seconds.
            _rpc(self.rpc_url, "evm_setIntervalMining", [max(1, round(self.block_time))])


def _rpc(url: str, method: str, params: list | None = None) -> object:
    r = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}, timeout=2)
    r.raise_for_status()
    return r.json()["result"]


def start_chain(
    log_dir: Path,
    chain_id: int = 31337,
    timeout: float = 30,
    *,
    block_time: float | None = 1.0,
    automine: bool = True,
    name: str = "anvil",
) -> Chain:
    """`block_time` adds interval mining; `automine=False` with it mines only on the interval (a chain that
    falls behind a burst of transactions, as a real one does)."""
    port = free_port()
    mining: list[str] = []
    if block_time is not None:
        mining = ["--block-time", str(block_time)] + (["--mixed-mining"] if automine else [])
    proc = ManagedProcess(
        name,
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
            *mining,
        ],
        log_dir,
    ).start()
    url = f"http://127.0.0.1:{port}"
    proc.wait_ready(lambda: int(str(_rpc(url, "eth_chainId")), 16) == chain_id, timeout)
    return Chain(rpc_url=url, chain_id=chain_id, process=proc, block_time=block_time, automine=automine)
