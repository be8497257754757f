"""`msq-gateway --config FILE [--host H] [--port P]`: serve the gateway (one uvicorn worker).

Also `--check` (validate the config and its secrets, print problems by field, exit 1 if any) and `--schema`
(print the config file's JSON Schema).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from msq_gateway.config import ConfigError, json_schema


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="msq-gateway", description="MSQ Relayer gateway")
    parser.add_argument("--config", type=Path, help="GatewayConfig file (YAML or JSON)")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--watch-interval",
        type=float,
        default=1.0,
        help="seconds between checks of the config file for changes (0: never reload)",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--access-log", action="store_true", help="log every request (costs throughput)")
    parser.add_argument("--check", action="store_true", help="validate the config and exit")
    parser.add_argument("--schema", action="store_true", help="print the config JSON Schema and exit")
    args = parser.parse_args(argv)

    if args.schema:
        json.dump(json_schema(), sys.stdout, indent=2)
        print()
        return 0
    if args.config is None:
        parser.error("--config is required")

    from msq_gateway.runtime import load_snapshot

    try:
        snapshot = load_snapshot(args.config)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"cannot read {args.config}: {exc}", file=sys.stderr)
        return 1
    if args.check:
        print(
            f"ok: version {snapshot.version}, {len(snapshot.relayers)} relayers, "
            f"{len(snapshot.clients_by_hash)} API keys, {len(snapshot.config.policies)} policies"
        )
        return 0

    import uvicorn

    from msq_gateway.app import create_app

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(args.config, watch_interval=args.watch_interval)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        workers=1,
        log_level=args.log_level,
        access_log=args.access_log,
        proxy_headers=False,
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
