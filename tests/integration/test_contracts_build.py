"""The committed contract artifacts are exactly what contracts/build.mjs makes with the pinned toolchain."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMITTED = REPO_ROOT / "contracts" / "msq_contracts" / "artifacts"


def test_build_reproduces_committed_artifacts_byte_for_byte(tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node, "node is part of the toolchain (package.json)"
    out = tmp_path / "artifacts"
    # Run from another folder: the build must not depend on the caller's working directory.
    result = subprocess.run(
        [node, str(REPO_ROOT / "contracts" / "build.mjs"), "--out", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "compiled SampleToken, SampleNFT" in result.stdout

    built = sorted(p.name for p in out.iterdir())
    assert built == sorted(p.name for p in COMMITTED.glob("*.json"))
    assert built == ["ERC2771Forwarder.json", "SampleNFT.json", "SampleToken.json"]
    for name in built:
        assert (out / name).read_bytes() == (COMMITTED / name).read_bytes(), (
            f"{name} differs from the committed artifact: rerun `node contracts/build.mjs` and commit"
        )


def test_build_rejects_unknown_arguments(tmp_path: Path) -> None:
    result = subprocess.run(
        ["node", str(REPO_ROOT / "contracts" / "build.mjs"), "--outdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "usage: node contracts/build.mjs [--out DIR]" in result.stderr
    assert not any(tmp_path.iterdir())
