"""A compiled, immutable view of one config file version, and the watcher that swaps it on change.

Each request reads `ConfigWatcher.current` once and uses that snapshot to the end, so a reload in the middle
of a request never mixes two versions. A file that fails to load or validate keeps the previous snapshot
serving, and the error is logged and counted.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from msq_contracts.forward_request import ForwarderDomain
from msq_gateway import metrics
from msq_gateway.config import (
    ConfigError,
    GatewayConfig,
    QuotaConfig,
    parse_config_text,
    read_secret,
    secret_files,
)
from msq_gateway.policy import CompiledPolicy

log = logging.getLogger("msq_gateway.config")


@dataclass(frozen=True)
class RelayerTarget:
    id: str
    url: str
    api_key: str
    signing_key: bytes | None
    draining: bool
    # precomputed so the hot path only formats the transaction id
    transactions_url: str
    status_url: str
    auth_header: str


@dataclass(frozen=True)
class Client:
    name: str
    quota: QuotaConfig | None
    callback_url: str | None
    callback_secret: bytes | None


@dataclass(frozen=True)
class Snapshot:
    config: GatewayConfig
    version: str
    rpc_url: str
    redis_url: str
    domain: ForwarderDomain
    policy: CompiledPolicy
    clients_by_hash: dict[str, Client]
    clients_by_name: dict[str, Client]
    relayers: tuple[RelayerTarget, ...]
    relayers_by_id: dict[str, RelayerTarget]


def build_snapshot(cfg: GatewayConfig, base_dir: Path, version: str = "") -> Snapshot:
    """Resolve secrets and precompute everything the hot path looks up; raises ConfigError naming fields."""
    problems: list[str] = []

    def secret(field: str, env: str | None, file: str | None, inline: str | None = None) -> str | None:
        try:
            return read_secret(field, env, file, base_dir, inline)
        except ConfigError as exc:
            problems.extend(exc.problems)
            return None

    rpc_url = secret("chain.rpcUrl", cfg.chain.rpc_url_env, cfg.chain.rpc_url_file, cfg.chain.rpc_url)
    redis_url = secret("redis.url", cfg.redis.url_env, cfg.redis.url_file, cfg.redis.url)
    relayers: list[RelayerTarget] = []
    for i, r in enumerate(cfg.relayers):
        api_key = secret(f"relayers[{i}].apiKey", r.api_key_env, r.api_key_file)
        signing = None
        if r.webhook_signing_key_env or r.webhook_signing_key_file:
            signing = secret(
                f"relayers[{i}].webhookSigningKey", r.webhook_signing_key_env, r.webhook_signing_key_file
            )
        base = r.url.rstrip("/") + f"/api/v1/relayers/{r.id}"
        relayers.append(
            RelayerTarget(
                id=r.id,
                url=r.url.rstrip("/"),
                api_key=api_key or "",
                signing_key=signing.encode() if signing else None,
                draining=r.draining,
                transactions_url=base + "/transactions",
                status_url=base + "/status",
                auth_header=f"Bearer {api_key}",
            )
        )
    quotas = {q.name: q for q in cfg.quotas}
    clients: dict[str, Client] = {}
    for i, k in enumerate(cfg.api_keys):
        cb_secret = None
        if k.callback_url:
            cb_secret = secret(f"apiKeys[{i}].callbackSecret", k.callback_secret_env, k.callback_secret_file)
        clients[k.sha256] = Client(
            name=k.name,
            quota=quotas[k.quota] if k.quota else None,
            callback_url=k.callback_url,
            callback_secret=cb_secret.encode() if cb_secret else None,
        )
    if problems:
        raise ConfigError(problems)
    assert rpc_url is not None and redis_url is not None
    return Snapshot(
        config=cfg,
        version=version,
        rpc_url=rpc_url,
        redis_url=redis_url,
        domain=ForwarderDomain(
            name=cfg.forwarder.name,
            chain_id=cfg.chain.chain_id,
            verifying_contract=cfg.forwarder.address,
            version=cfg.forwarder.version,
        ),
        policy=CompiledPolicy.build(cfg.policies),
        clients_by_hash=clients,
        clients_by_name={c.name: c for c in clients.values()},
        relayers=tuple(relayers),
        relayers_by_id={r.id: r for r in relayers},
    )


def load_snapshot(path: Path) -> Snapshot:
    # One read: the version is the hash of the very bytes parsed. Hashing a second read could label the old
    # content with a newer file's version if the file is replaced in between, and that newer file would
    # then never be loaded ("same version").
    raw = path.read_bytes()
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        raise ConfigError([f"(file) {path}: not UTF-8 text: {exc}"]) from None
    cfg = parse_config_text(text, path)
    return build_snapshot(cfg, path.parent, config_version(path, cfg, raw))


def config_version(path: Path, cfg: GatewayConfig | None, raw: bytes | None = None) -> str:
    """Content hash of the config file (`raw`, as read, else read now) plus its secret files, so a rotated
    secret is a new version too."""
    h = hashlib.sha256(path.read_bytes() if raw is None else raw)
    if cfg is not None:
        for f in secret_files(cfg, path.parent):
            try:
                h.update(f.read_bytes())
            except OSError:
                h.update(b"\0missing")
    return h.hexdigest()[:16]


def _stamp(paths: list[Path]) -> tuple[tuple[float, int], ...]:
    out = []
    for p in paths:
        try:
            st = p.stat()
            out.append((st.st_mtime, st.st_size))
        except OSError:
            out.append((-1.0, -1))
    return tuple(out)


class ConfigWatcher:
    """Holds the current snapshot; `poll()` reloads it when the file or a secret file changed."""

    def __init__(self, path: Path, interval: float = 1.0) -> None:
        self.path = path
        self.interval = interval
        self.current = load_snapshot(path)
        self.last_error: str | None = None
        self._stamp = self._stat()
        self._listeners: list[Callable[[Snapshot], None]] = []
        metrics.CONFIG_VERSION.info({"version": self.current.version})

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot) -> ConfigWatcher:
        """A fixed snapshot without a file (tests, embedding)."""
        self = cls.__new__(cls)
        self.path = Path()
        self.interval = 0
        self.current = snapshot
        self.last_error = None
        self._stamp = ()
        self._listeners = []
        return self

    def on_change(self, listener: Callable[[Snapshot], None]) -> None:
        self._listeners.append(listener)

    def _stat(self) -> tuple[tuple[float, int], ...]:
        return _stamp([self.path, *secret_files(self.current.config, self.path.parent)])

    def check(self) -> Snapshot | None:
        """Load the file if anything changed on disk; a new snapshot, or None. Does not install it."""
        if self.interval == 0:
            return None
        stamp = self._stat()
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        try:
            snapshot = load_snapshot(self.path)
        except (ConfigError, OSError) as exc:
            self.last_error = str(exc)
            metrics.CONFIG_RELOADS.labels(result="error").inc()
            log.error("config reload failed, keeping version %s: %s", self.current.version, exc)
            return None
        self.last_error = None
        # Touching files without changing content is not a new version.
        return snapshot if snapshot.version != self.current.version else None

    def install(self, snapshot: Snapshot) -> None:
        # The stamp stays the one taken before the load: a file written after that is seen at the next check,
        # whereas re-reading stamps here could take in a write the loaded snapshot does not contain.
        self.current = snapshot
        metrics.CONFIG_RELOADS.labels(result="ok").inc()
        metrics.CONFIG_VERSION.info({"version": snapshot.version})
        log.info("config reloaded: version %s, %d relayers", snapshot.version, len(snapshot.relayers))
        for listener in self._listeners:
            listener(snapshot)

    def poll(self) -> bool:
        """Reload now if anything changed; True when a new snapshot was installed."""
        snapshot = self.check()
        if snapshot is None:
            return False
        self.install(snapshot)
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                # File reads are small and rare, but keep them off the event loop; the swap happens on it.
                snapshot = await asyncio.to_thread(self.check)
                if snapshot is not None:
                    self.install(snapshot)
            except Exception:
                log.exception("config watcher iteration failed")
