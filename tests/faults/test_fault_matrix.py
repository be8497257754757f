"""The fault matrix: whatever dies, every request the gateway accepted ends in exactly one terminal state, and
no transaction is sent twice.

A pool of 3 (operator, local pods, gateway) runs on its own anvil, Redis (append-only file), OpenBao (raft
storage, so it can be restarted and sealed) and control plane, so that stopping them leaves the session's
services alone. Each row runs a steady mixed direct/gasless load (tests/support/fault_load.py), injects one
fault, heals it, keeps the load on a little, waits for every accepted request to be terminal and counts from
the client's records, the gateway's status API and the chain (tests/support/fault_ledger.py). The table is
printed and written to `fault-matrix.json` under the test's output folder.

The relayer engine is the stand-in unless MSQ_RELAYER_ENGINE=oz (the real OZ Relayer spends ~1 CPU-s per
transaction here, which would make the matrix far longer than its bound).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from msq_devstack.chain import start_chain
from msq_devstack.engine import Engine
from msq_devstack.kube import start_control_plane
from msq_devstack.openbao import start_openbao
from msq_devstack.redis import start_redis
from msq_devstack.scenario import DEPLOYER_KEY, PoolScenario
from msq_devstack.stack import Stack
from tests.support import fault_ledger
from tests.support.fault_load import Load, Target
from tests.support.gateway import address_of, mint_tokens, user_keys
from tests.support.relayer_io import wait_for

POOL = "faults"
ENGINE: Engine = "oz" if os.environ.get("MSQ_RELAYER_ENGINE", "").strip().lower() == "oz" else "dev"
RATE = 5.0 if ENGINE == "dev" else 1.0  # requests a second
BEFORE, AFTER = 2.0, 3.0  # seconds of load before the fault and after it healed
SETTLE = 90.0  # bound on waiting for every accepted request to be terminal
USERS = 12


@dataclass
class Matrix:
    stack: Stack
    scenario: PoolScenario
    target: Target
    relayers: list[str]
    users: list[str]
    out: Path
    rows: list[fault_ledger.Row]


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    work = tmp_path_factory.mktemp("faults")
    logs = work / "logs"
    started: list[Callable[[], None]] = []
    scenario: PoolScenario | None = None
    try:
        chain = start_chain(logs, name="anvil-faults")
        started.append(chain.stop)
        redis = start_redis(logs, appendonly=True, data_dir=work / "redis", name="redis-faults")
        started.append(redis.stop)
        bao = start_openbao(logs, persistent_dir=work / "openbao")
        started.append(bao.stop)
        kube = start_control_plane(work / "kube", logs)
        started.append(kube.stop)
        stack = Stack(work_dir=work, kube=kube, openbao=bao, redis=redis, chain=chain)
        scenario = PoolScenario.start(stack, f"faults-{uuid.uuid4().hex[:6]}", work / "scenario", ENGINE)
        scenario.create("contractpolicies", scenario.policy_manifest("faults-policy", {"app": POOL}))
        relayers = scenario.create_funded_pool(POOL, replicas=3)
        gw = scenario.gateway(POOL)
        users = user_keys(USERS, "faults")
        holders = [address_of(k) for k in users]
        mint_tokens(chain.rpc_url, scenario.contracts.token, DEPLOYER_KEY, holders, 10**24)
        wait_for("3 routable relayers", lambda: _routable(gw.url) == 3, timeout=60, interval=0.5)
        target = Target(
            gw.url,
            scenario.api_key,
            chain.rpc_url,
            scenario.contracts.nft,
            scenario.contracts.token,
            scenario.domain(),
        )
        print(f"\nfault matrix: engine {ENGINE}, service logs in {logs}")
        yield Matrix(stack, scenario, target, relayers, users, work, [])
    finally:
        if scenario is not None:
            scenario.stop()
        for stop in reversed(started):
            stop()


def _routable(gateway_url: str) -> int:
    try:
        text = httpx.get(f"{gateway_url}/metrics", timeout=2).text
    except httpx.HTTPError:
        return 0
    return sum(
        1
        for line in text.splitlines()
        if line.startswith("msq_gateway_relayer_routable{") and line.rstrip().endswith(" 1.0")
    )


def _pod(m: Matrix, component: str) -> str:
    names = sorted(n for n, p in m.scenario.pods.pods.items() if p.component == component)
    assert names, f"no {component} pod"
    return names[0]


def _wait_pod_back(m: Matrix, name: str) -> None:
    wait_for(
        f"pod {name} running again",
        lambda: name in m.scenario.pods.pods and m.scenario.pods.pods[name].process.alive,
        timeout=60,
        interval=0.2,
    )


# -- the faults: each injects and heals ----------------------------------------------------------------------


def sigkill_gateway(m: Matrix) -> None:
    name = _pod(m, "gateway")
    m.scenario.pods.kill(name)
    _wait_pod_back(m, name)


def sigkill_relayer(m: Matrix) -> None:
    name = _pod(m, "relayer")
    m.scenario.pods.kill(name)
    _wait_pod_back(m, name)


def sigkill_operator(m: Matrix) -> None:
    m.scenario.operator.kill()
    time.sleep(2)
    m.scenario.restart_operator()


def anvil_frozen_10s(m: Matrix) -> None:
    assert m.stack.chain
    m.stack.chain.freeze()
    try:
        time.sleep(10)
    finally:
        m.stack.chain.thaw()


def redis_killed_aof(m: Matrix) -> None:
    assert m.stack.redis
    m.stack.redis.restart(kill=True)


def openbao_stopped(m: Matrix) -> None:
    assert m.stack.openbao
    m.stack.openbao.restart(down_seconds=5)


def openbao_sealed(m: Matrix) -> None:
    assert m.stack.openbao
    m.stack.openbao.seal()
    time.sleep(5)
    m.stack.openbao.unseal()


def apiserver_restarted(m: Matrix) -> None:
    assert m.stack.kube
    m.stack.kube.restart_apiserver(down_seconds=3)


FAULTS: list[Callable[[Matrix], None]] = [
    sigkill_gateway,
    sigkill_relayer,
    sigkill_operator,
    anvil_frozen_10s,
    redis_killed_aof,
    openbao_stopped,
    openbao_sealed,
    apiserver_restarted,
]


def redis_killed_without_aof(m: Matrix) -> None:
    assert m.stack.redis
    m.stack.redis.restart(kill=True, appendonly=False)


def _run_row(m: Matrix, fault: Callable[[Matrix], None], settle: float = SETTLE) -> fault_ledger.Row:
    """Load, fault, heal, load, settle; count, print the table so far and write it as JSON."""
    assert m.stack.chain
    rpc_url = m.stack.chain.rpc_url
    wait_for("3 routable relayers", lambda: _routable(m.target.gateway_url) == 3, timeout=60, interval=0.5)
    before = fault_ledger.mark(rpc_url, m.relayers)
    load = Load(m.target, m.users, rate=RATE).start()
    try:
        time.sleep(BEFORE)
        fault(m)
        time.sleep(AFTER)
    finally:
        load.stop_sending()
        settled = load.settle(settle)
    after = fault_ledger.mark(rpc_url, m.relayers)
    row = fault_ledger.count(
        fault.__name__, load.requests, rpc_url, m.target.nft, m.target.token, before, after, settled
    )
    m.rows.append(row)
    path = m.out / "fault-matrix.json"
    fault_ledger.write(path, m.rows, {"engine": ENGINE, "rate_per_second": RATE})
    print(f"\n{fault_ledger.table(m.rows)}\nwritten to {path}")
    assert row.accepted > 0, row
    # Every relayer transaction in the row's blocks was seen, and nonces moved by exactly that many.
    assert row.nonce_advance == row.relayer_txs, row
    return row


@pytest.mark.parametrize("fault", FAULTS, ids=[f.__name__ for f in FAULTS])
def test_fault_row(matrix: Matrix, fault: Callable[[Matrix], None]) -> None:
    row = _run_row(matrix, fault)
    assert (row.lost, row.duplicated) == (0, 0), row.notes


def test_redis_restarted_without_aof(matrix: Matrix) -> None:
    """Last, since it empties the pool's store. Redis without persistence restarts empty: the gateway's
    records, idempotency keys and nonce reservations, and the relayers' queues, are gone, so requests
    accepted before the wipe can end without a record (docs/install.md asks for AOF for this reason). The
    promise this row holds is the other half: nothing is sent twice, neither by a client retrying with its
    key after the wipe nor by a relayer resuming on an empty store. What was lost is counted and printed."""
    # Records that are gone never turn terminal: waiting the full bound for them would show nothing more.
    row = _run_row(matrix, redis_killed_without_aof, settle=20)
    assert row.duplicated == 0, row.notes
