"""Start-up order as OZ does it: settings, config, signer, then Redis and the chain, then serve."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import redis.asyncio as aioredis
import uvicorn

from msq_devrelayer.api import create_app
from msq_devrelayer.config import RelayerConfig, load_config
from msq_devrelayer.engine import Engine
from msq_devrelayer.errors import StartupError
from msq_devrelayer.metrics import Metrics
from msq_devrelayer.redis_keys import RedisKeys
from msq_devrelayer.rpc import JsonRpc, RpcError, RpcTransportError
from msq_devrelayer.settings import ServerSettings, settings_from_env
from msq_devrelayer.signer import KeySigner, load_vault_signer
from msq_devrelayer.webhooks import Notifier

log = logging.getLogger("msq_devrelayer")


def prepare(env: Mapping[str, str]) -> tuple[ServerSettings, RelayerConfig, KeySigner]:
    """Everything that can be checked before any network service is touched, plus the key fetch."""
    settings = settings_from_env(env)
    cfg = load_config(settings.config_path, env)
    signer = load_vault_signer(cfg.signer, settings.expected_address)
    return settings, cfg, signer


async def _check_chain(rpc: JsonRpc, cfg: RelayerConfig) -> None:
    try:
        chain_id = int(await rpc.call("eth_chainId"), 16)
    except (RpcError, RpcTransportError) as exc:
        raise StartupError(
            f"network {cfg.network.name}: RPC {cfg.network.rpc_urls[0]} unusable: {exc}"
        ) from None
    if chain_id != cfg.network.chain_id:
        raise StartupError(
            f"invalid config: networks.chain_id: {cfg.network.chain_id} but the RPC endpoint "
            f"serves chain {chain_id}"
        )


async def serve(settings: ServerSettings, cfg: RelayerConfig, signer: KeySigner) -> None:
    redis = aioredis.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        max_connections=64,
        socket_timeout=10,
        socket_connect_timeout=5,
    )
    rpc = JsonRpc(cfg.network.rpc_urls)
    metrics = Metrics(cfg.relayer_id)
    notifier = None
    if cfg.webhook is not None:
        key = cfg.webhook.signing_key.reveal() if cfg.webhook.signing_key is not None else None
        notifier = Notifier(cfg.webhook.url, key, on_result=metrics.webhook)
    engine = Engine(
        cfg,
        RedisKeys(settings.redis_key_prefix, settings.queue_prefix, cfg.relayer_id),
        redis,
        rpc,
        signer,
        notifier,
        metrics,
    )
    try:
        try:
            await redis.ping()
        except Exception as exc:  # any failure here means REDIS_URL is unusable
            raise StartupError(f"REDIS_URL: cannot reach Redis: {type(exc).__name__}: {exc}") from None
        await _check_chain(rpc, cfg)
        if settings.enable_metrics:
            metrics.serve(settings.host, settings.metrics_port)
        if notifier is not None:
            notifier.start()
        await engine.start()
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(engine, settings.api_key),
                host=settings.host,
                port=settings.app_port,
                log_level="warning",
                access_log=False,
                lifespan="off",
                server_header=False,
            )
        )
        log.info(
            "relayer %s (%s) serving on %s:%d, chain %d",
            cfg.relayer_id,
            signer.address,
            settings.host,
            settings.app_port,
            cfg.network.chain_id,
        )
        await server.serve()
    finally:
        await engine.stop()
        if notifier is not None:
            await notifier.drain(2.0)
            await notifier.aclose()
        await rpc.aclose()
        await redis.aclose()


def run(env: Mapping[str, str]) -> None:
    settings, cfg, signer = prepare(env)
    asyncio.run(serve(settings, cfg, signer))
