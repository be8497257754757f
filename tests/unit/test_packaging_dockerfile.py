"""The Dockerfile passes hadolint with no findings and builds a non-root image with both entry points."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HADOLINT = Path(sys.executable).parent / "hadolint"


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [str(HADOLINT), "--no-color", "--format", "json", "--failure-threshold", "style", "Dockerfile"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(result.stdout or "[]") == [], result.stdout
    assert result.returncode == 0, result.stderr


def test_hadolint_would_report_a_finding() -> None:
    """Guards the test above against a hadolint that silently checks nothing."""
    result = subprocess.run(
        [str(HADOLINT), "--no-color", "--format", "json", "-"],
        input="FROM python:latest\nRUN apt-get install -y curl\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    codes = {f["code"] for f in json.loads(result.stdout)}
    assert {"DL3007", "DL3008"} <= codes


def test_final_stage_runs_as_the_chart_uid_and_ships_no_build_context_extras() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    final = dockerfile.split("\nFROM ")[-1]
    assert re.search(r"^USER 10001:10001$", final, re.M)
    assert "COPY --from=build /opt/msq /opt/msq" in final
    assert not re.search(r"^COPY (?!--from)", final, re.M), "the final stage only takes the built venv"
    chart = (REPO / "charts/msq-relayer-operator/templates/deployment.yaml").read_text()
    assert "runAsUser: 10001" in chart
    ignore = [line for line in (REPO / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    assert ignore[0] == "*", "the build context is an allow-list"
    copied = [
        src for line in re.findall(r"^COPY (?!--from)(.+)$", dockerfile, re.M) for src in line.split()[:-1]
    ]
    assert "pyproject.toml" in copied and "operator/" in copied and "gateway/" in copied
    for src in copied:
        assert f"!{src}" in ignore, f"{src} is copied but excluded from the build context"
