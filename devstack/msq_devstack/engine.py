"""Which relayer engine the local stack runs for the OZ Relayer image: the real OpenZeppelin Relayer binary
(built from its unmodified source by tools/oz-relayer/build.sh) or the local stand-in (`msq-devrelayer`).

`MSQ_RELAYER_ENGINE=oz|dev` chooses per run; unset, the real engine runs wherever its binary is built. Both
read the same env, `config.json` and Vault AppRole, so the caller passes exactly what the operator renders.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path
from typing import Literal

from msq_devstack.tools import REPO_ROOT, MissingTool

Engine = Literal["oz", "dev"]
ENV_ENGINE = "MSQ_RELAYER_ENGINE"
ENV_OZ_BIN = "MSQ_OZ_RELAYER_BIN"
ENV_OZ_SRC = "MSQ_OZ_RELAYER_SRC"
BUILD_SCRIPT = REPO_ROOT / "tools/oz-relayer/build.sh"
HOW_TO_ENABLE = (
    f"the real OZ Relayer is not built: set {ENV_OZ_SRC} to a checkout or `git archive` .tar.gz of "
    "openzeppelin-relayer v1.8.0 (or put the archive at ../shared/vendor/ beside the repository) and run "
    "`make deps`"
)


@functools.cache
def oz_binary() -> Path | None:
    """The built OZ Relayer binary, or None when no source is available to build it from."""
    given = os.environ.get(ENV_OZ_BIN)
    if given:
        if not Path(given).is_file():
            raise MissingTool(f"{ENV_OZ_BIN}={given}: no such file")
        return Path(given)
    out = subprocess.run([str(BUILD_SCRIPT)], check=True, capture_output=True, text=True).stdout.strip()
    return Path(out.splitlines()[-1]) if out else None


def oz_networks_dir() -> Path | None:
    """OZ's own network definitions (config/networks of its source), kept beside the built binary."""
    binary = oz_binary()
    folder = binary.parent / "networks" if binary else None
    return folder if folder and folder.is_dir() else None


def selected() -> Engine:
    raw = os.environ.get(ENV_ENGINE, "").strip().lower()
    if raw == "dev":
        return "dev"
    if raw == "oz":
        if oz_binary() is None:
            raise MissingTool(f"{ENV_ENGINE}=oz, but {HOW_TO_ENABLE}")
        return "oz"
    if raw:
        raise ValueError(f"{ENV_ENGINE}={raw!r}: expected 'oz' or 'dev'")
    return "oz" if oz_binary() is not None else "dev"


def relayer_argv(engine: Engine) -> list[str]:
    """The command the OZ Relayer image would run, for this engine."""
    if engine == "oz":
        binary = oz_binary()
        if binary is None:
            raise MissingTool(HOW_TO_ENABLE)
        return [str(binary)]
    return [sys.executable, "-m", "msq_devrelayer.cli"]
