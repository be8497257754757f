"""A PoolScenario (operator process, local pods, sample contracts) on the session's real services."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from msq_devstack.chain import Chain
from msq_devstack.kube import KubeControlPlane
from msq_devstack.openbao import OpenBao
from msq_devstack.redis import Redis
from msq_devstack.scenario import PoolScenario
from msq_devstack.stack import Stack


def start_scenario(
    prefix: str,
    kube: KubeControlPlane,
    openbao: OpenBao,
    redis_server: Redis,
    chain: Chain,
    stack_logs: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> PoolScenario:
    """A fresh namespace `<prefix>-<random>` with the operator and the local pod runner on it."""
    stack = Stack(work_dir=stack_logs.parent, kube=kube, openbao=openbao, redis=redis_server, chain=chain)
    return PoolScenario.start(stack, f"{prefix}-{uuid.uuid4().hex[:6]}", tmp_path_factory.mktemp(prefix))


def scenario_fixture(prefix: str) -> Callable[..., Iterator[PoolScenario]]:
    """A module-scoped fixture yielding a started scenario, stopped afterwards:
    `scenario = scenario_fixture("e2e")`."""

    @pytest.fixture(scope="module")
    def _scenario(
        kube: KubeControlPlane,
        openbao: OpenBao,
        redis_server: Redis,
        chain: Chain,
        stack_logs: Path,
        tmp_path_factory: pytest.TempPathFactory,
    ) -> Iterator[PoolScenario]:
        s = start_scenario(prefix, kube, openbao, redis_server, chain, stack_logs, tmp_path_factory)
        yield s
        s.stop()

    return _scenario
