"""A PoolScenario (operator process, local pods, sample contracts) on the session's real services."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client

from msq_devstack.chain import Chain
from msq_devstack.kube import KubeControlPlane
from msq_devstack.openbao import OpenBao
from msq_devstack.redis import Redis
from msq_devstack.scenario import PoolScenario
from msq_devstack.stack import Stack
from msq_operator.render.relayer import SECRET_API_KEY, endpoint, names_of


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


def relayer_client(s: PoolScenario, relayer: dict[str, Any]) -> tuple[httpx.Client, str]:
    """An HTTP client on the relayer's own API (its key from its Secret) and its transactions path."""
    n = names_of(relayer)
    secret = client.CoreV1Api(s.api).read_namespaced_secret(n.secret, s.namespace)
    key = base64.b64decode(secret.data[SECRET_API_KEY]).decode()
    c = httpx.Client(base_url=endpoint(relayer), timeout=30, headers={"Authorization": f"Bearer {key}"})
    return c, f"/api/v1/relayers/{n.oz_id}/transactions"
