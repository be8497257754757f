"""Server settings from the environment, under the names OZ Relayer reads them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from msq_devrelayer.errors import StartupError

# OZ refuses API keys shorter than this (MINIMUM_SECRET_VALUE_LENGTH).
MIN_SECRET_LENGTH = 32
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


@dataclass(frozen=True)
class ServerSettings:
    api_key: str
    redis_url: str
    # OZ prefixes repository keys with REDIS_KEY_PREFIX (default "oz-relayer") but its queues only when
    # the variable is set: `{REDIS_KEY_PREFIX}:queue:transaction_request_queue`.
    redis_key_prefix: str
    queue_prefix: str
    config_path: Path
    host: str
    app_port: int
    metrics_port: int
    enable_metrics: bool
    log_level: str
    # Not an OZ variable: OZ's vault signer config has no field for the relayer address, so the operator
    # may pass it here and the dev relayer refuses to start if the key in Vault derives another address.
    expected_address: str | None

    def __repr__(self) -> str:
        return f"ServerSettings(config_path={self.config_path!s}, app_port={self.app_port}, ...)"


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, str(default))
    try:
        port = int(raw)
    except ValueError:
        raise StartupError(f"{name}: {raw!r} is not a port number") from None
    if not 0 < port < 65536:
        raise StartupError(f"{name}: {port} is out of range")
    return port


def settings_from_env(env: Mapping[str, str]) -> ServerSettings:
    api_key = env.get("API_KEY", "")
    if len(api_key) < MIN_SECRET_LENGTH:
        raise StartupError(
            f"API_KEY: must be at least {MIN_SECRET_LENGTH} characters long (found {len(api_key)})"
        )
    redis_url = env.get("REDIS_URL", "")
    if not redis_url:
        raise StartupError("REDIS_URL: required")
    prefix_env = env.get("REDIS_KEY_PREFIX", "")
    expected = env.get("MSQ_EXPECTED_SIGNER_ADDRESS") or None
    if expected is not None and not _ADDRESS.match(expected):
        raise StartupError(f"MSQ_EXPECTED_SIGNER_ADDRESS: {expected!r} is not an address")
    config_dir = Path(env.get("CONFIG_DIR", "config"))
    return ServerSettings(
        api_key=api_key,
        redis_url=redis_url,
        redis_key_prefix=prefix_env or "oz-relayer",
        queue_prefix=f"{prefix_env}:queue:" if prefix_env else "",
        config_path=config_dir / env.get("CONFIG_FILE_NAME", "config.json"),
        host=env.get("HOST", "0.0.0.0"),
        app_port=_port(env, "APP_PORT", 8080),
        metrics_port=_port(env, "METRICS_PORT", 8081),
        # OZ reads METRICS_ENABLED, exactly "true" in any case (main.rs).
        enable_metrics=env.get("METRICS_ENABLED", "").lower() == "true",
        log_level=env.get("LOG_LEVEL", "info").lower(),
        expected_address=expected,
    )
