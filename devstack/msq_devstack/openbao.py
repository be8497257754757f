"""OpenBao dev server with KV v2 (at `secret/`) and AppRole enabled."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import hvac

from msq_devstack import tools
from msq_devstack.process import ManagedProcess, free_port


@dataclass
class OpenBao:
    addr: str
    root_token: str
    kv_mount: str
    process: ManagedProcess

    def client(self) -> hvac.Client:
        return hvac.Client(url=self.addr, token=self.root_token)

    def stop(self) -> None:
        self.process.stop()


def start_openbao(log_dir: Path, timeout: float = 30) -> OpenBao:
    port = free_port()
    token = secrets.token_hex(16)
    addr = f"http://127.0.0.1:{port}"
    proc = ManagedProcess(
        "openbao",
        [
            tools.bao(),
            "server",
            "-dev",
            f"-dev-root-token-id={token}",
            f"-dev-listen-address=127.0.0.1:{port}",
            "-dev-no-store-token",
        ],
        log_dir,
        env={"BAO_ADDR": addr, "HOME": str(log_dir)},
    ).start()
    client = hvac.Client(url=addr, token=token)
    proc.wait_ready(lambda: client.sys.is_initialized() and not client.sys.is_sealed(), timeout)
    if "approle/" not in client.sys.list_auth_methods():
        client.sys.enable_auth_method("approle")
    return OpenBao(addr=addr, root_token=token, kv_mount="secret", process=proc)
