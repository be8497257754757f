"""Session-wide real services, each started on demand on 127.0.0.1 with random ports and stopped at the end.

Service logs live under the pytest base temp folder (kept for the last runs) and their path is attached to the
report of any failing test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from msq_devstack.chain import Chain, start_chain
from msq_devstack.kube import KubeControlPlane, start_control_plane
from msq_devstack.openbao import OpenBao, start_openbao
from msq_devstack.redis import Redis, start_redis

_LOG_DIRS: list[Path] = []


@pytest.fixture(scope="session")
def stack_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("stack-logs")
    _LOG_DIRS.append(path)
    return path


@pytest.fixture(scope="session")
def chain(stack_logs: Path) -> Iterator[Chain]:
    c = start_chain(stack_logs)
    yield c
    c.stop()


@pytest.fixture(scope="session")
def redis_server(stack_logs: Path) -> Iterator[Redis]:
    r = start_redis(stack_logs)
    yield r
    r.stop()


@pytest.fixture(scope="session")
def openbao(stack_logs: Path) -> Iterator[OpenBao]:
    b = start_openbao(stack_logs)
    yield b
    b.stop()


@pytest.fixture(scope="session")
def kube(stack_logs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeControlPlane]:
    plane = start_control_plane(tmp_path_factory.mktemp("kube"), stack_logs)
    yield plane
    plane.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    if report.failed and _LOG_DIRS:
        report.sections.append(("service logs", "\n".join(str(p) for p in _LOG_DIRS)))
    return report


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The tier follows the folder, so a test cannot forget its marker.
    for item in items:
        for tier in ("unit", "integration", "e2e", "conformance", "faults"):
            if f"/tests/{tier}/" in str(item.path):
                item.add_marker(getattr(pytest.mark, tier))
