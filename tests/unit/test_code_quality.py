"""The tree is ruff clean and the Python packages never shadow the standard library."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_ruff_clean() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", str(REPO)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_package_named_operator() -> None:
    import operator

    # The stdlib module must win: the `operator/` folder is a source root, never a package.
    assert Path(operator.__file__).resolve().is_relative_to(Path(sys.base_prefix).resolve())
    assert not (REPO / "operator" / "__init__.py").exists()
