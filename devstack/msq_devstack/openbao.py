"""OpenBao with KV v2 (at `secret/`) and AppRole enabled: a dev server in memory, or a single-node server on
raft storage that outlives a restart and can be sealed and unsealed (`persistent_dir`)."""

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
    # Raft storage only: the single unseal key share (test material, never a production key).
    unseal_key: str | None = None

    def client(self) -> hvac.Client:
        return hvac.Client(url=self.addr, token=self.root_token)

    def stop(self) -> None:
        self.process.stop()

    def seal(self) -> None:
        self.client().sys.seal()

    def unseal(self, timeout: float = 30) -> None:
        assert self.unseal_key, "a dev server cannot be unsealed by key"
        c = self.client()
        self.process.wait_ready(lambda: c.sys.is_initialized(), timeout)
        c.sys.submit_unseal_key(self.unseal_key)
        # Unsealed is not yet serving: the raft node must elect itself leader first.
        self.process.wait_ready(
            lambda: not c.sys.is_sealed() and bool(c.sys.read_leader_status()["is_self"]), timeout
        )

    def restart(self, down_seconds: float = 0.0, timeout: float = 30) -> None:
        """Stop, stay down `down_seconds`, start again on the same storage and port, then unseal (raft
        storage only)."""
        import time

        self.process.stop()
        time.sleep(down_seconds)
        self.process.start()
        self.unseal(timeout)


def start_openbao(log_dir: Path, timeout: float = 30, *, persistent_dir: Path | None = None) -> OpenBao:
    if persistent_dir is not None:
        return _start_on_raft(log_dir, persistent_dir, timeout)
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


def _start_on_raft(log_dir: Path, data_dir: Path, timeout: float) -> OpenBao:
    port = free_port()
    addr = f"http://127.0.0.1:{port}"
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "openbao.hcl"
    storage = data_dir / "raft"
    storage.mkdir(exist_ok=True)
    config.write_text(
        f'storage "raft" {{\n  path = "{storage}"\n  node_id = "devstack"\n}}\n'
        f'listener "tcp" {{\n  address = "127.0.0.1:{port}"\n  tls_disable = true\n}}\n'
        f'api_addr = "{addr}"\n'
        f'cluster_addr = "http://127.0.0.1:{free_port()}"\n'
    )
    proc = ManagedProcess(
        "openbao-raft",
        [tools.bao(), "server", f"-config={config}"],
        log_dir,
        env={"BAO_ADDR": addr, "HOME": str(data_dir)},
    ).start()
    client = hvac.Client(url=addr)
    proc.wait_ready(lambda: client.sys.read_health_status(method="GET") is not None, timeout)
    init = client.sys.initialize(secret_shares=1, secret_threshold=1)
    bao = OpenBao(
        addr=addr, root_token=init["root_token"], kv_mount="secret", process=proc, unseal_key=init["keys"][0]
    )
    bao.unseal(timeout)
    c = bao.client()
    c.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    c.sys.enable_auth_method("approle")
    return bao
