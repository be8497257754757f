"""`msq-devrelayer`: run one OZ Relayer stand-in, configured exactly like an OZ Relayer container."""

from __future__ import annotations

import logging
import os
import sys

from msq_devrelayer.errors import StartupError
from msq_devrelayer.server import run


def main() -> None:
    level = os.environ.get("LOG_LEVEL", "info").upper()
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        run(os.environ)
    except StartupError as exc:
        print(f"msq-devrelayer: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
