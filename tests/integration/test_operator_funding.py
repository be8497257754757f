"""Treasury top-ups on real parts (API server, OpenBao, anvil, the operator process): a relayer below
minBalance is refilled from the pool's treasury exactly once, even when the operator is killed with SIGKILL
right after recording the transfer and right after sending it; the daily cap and an empty treasury stop
top-ups and say why; deleting a pool that sweeps moves each relayer's balance to the treasury once, across
the same two kills. No relayer processes run: funding reads balances from the chain, not from relayers."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import hvac
import hvac.exceptions
import pytest
from kubernetes import client
from web3 import Web3

from msq_devstack.chain import ANVIL_KEYS, Chain
from msq_devstack.kube import KubeControlPlane
from msq_devstack.openbao import OpenBao
from msq_devstack.operator import OperatorProcess
from msq_devstack.relayers import fund
from msq_operator.faults import ENV as KILL_AT
from tests.support import manifests
from tests.support.kube import (
    GROUP,
    VERSION,
    condition,
    crds_api,
    eventually,
    get_cr,
    list_cr,
    pool_namespace_fixture,
)

ETH = 10**18
POOL = "funded"
FORWARDER = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
TREASURY_FUNDER = ANVIL_KEYS[4]


api = crds_api
namespace = pool_namespace_fixture("fund")


class Operators:
    """One operator process at a time, each started with or without a point to die at."""

    def __init__(self, kube: KubeControlPlane, namespace: str, logs: Path) -> None:
        self.kube, self.namespace, self.logs, self.runs = kube, namespace, logs, 0
        self.current: OperatorProcess | None = None

    def start(self, kill_at: str = "") -> OperatorProcess:
        self.runs += 1
        self.current = OperatorProcess(
            self.kube.operator_kubeconfig,
            self.logs,
            namespaces=[self.namespace],
            name=f"operator-{self.namespace}-{self.runs}",
            env={KILL_AT: kill_at} if kill_at else None,
        ).start()
        return self.current

    def died_by_sigkill(self, timeout: float = 90) -> bool:
        assert self.current and self.current.process.proc
        try:
            return self.current.process.proc.wait(timeout) == -9
        except subprocess.TimeoutExpired:
            return False

    def stop(self) -> None:
        if self.current:
            self.current.stop()


@pytest.fixture(scope="module")
def operators(kube: KubeControlPlane, namespace: str, stack_logs: Path) -> Iterator[Operators]:
    ops = Operators(kube, namespace, stack_logs)
    yield ops
    ops.stop()


def _pool(api: client.ApiClient, ns: str) -> dict[str, Any]:
    return get_cr(api, ns, "relayerpools", POOL)


def _funding(api: client.ApiClient, ns: str) -> dict[str, Any]:
    return (_pool(api, ns).get("status") or {}).get("funding") or {}


def _events(api: client.ApiClient, ns: str, reason: str) -> list[str]:
    items = client.CoreV1Api(api).list_namespaced_event(ns, field_selector=f"reason={reason}").items
    return [str(e.message) for e in items]


def _addresses(api: client.ApiClient, ns: str) -> dict[str, str]:
    return {
        r["metadata"]["name"]: r["status"]["address"]
        for r in list_cr(api, ns, "relayers")
        if (r.get("status") or {}).get("address")
    }


def test_a_relayer_is_refilled_from_the_treasury_once_across_sigkills(
    api: client.ApiClient,
    namespace: str,
    operators: Operators,
    openbao: OpenBao,
    chain: Chain,
) -> None:
    w3 = Web3(Web3.HTTPProvider(chain.rpc_url))
    body = manifests.pool(
        POOL,
        replicas=1,
        vault_addr=openbao.addr,
        rpc_url=chain.rpc_url,
        chain_id=chain.chain_id,
        forwarder=FORWARDER,
    )
    body["spec"]["funding"] = {
        "minBalance": str(ETH),
        "targetBalance": str(2 * ETH),
        "dailyCap": str(10 * ETH),
    }
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "relayerpools", body
    )

    # 1. The treasury is created in Vault and is empty: the pool says so, and nothing is sent.
    operators.start(kill_at="funding.recorded")
    funding = eventually(
        lambda: (f := _funding(api, namespace)).get("state") == "TreasuryEmpty" and f, what="TreasuryEmpty"
    )
    treasury = funding["treasuryAddress"]
    key = openbao.client().secrets.kv.v2.read_secret_version(
        path=f"msq-relayer/{namespace}/{POOL}-treasury", mount_point="secret", raise_on_deleted_version=True
    )["data"]["data"]["value"]
    assert w3.eth.account.from_key(key).address == treasury
    assert key not in str(_pool(api, namespace)) and key[2:] not in str(_pool(api, namespace))
    cond = eventually(
        lambda: (c := condition(_pool(api, namespace), "Funded")) and c["reason"] == "TreasuryEmpty" and c,
        what="Funded=False TreasuryEmpty",
    )
    assert cond["status"] == "False" and "the treasury holds 0 wei" in cond["message"], cond
    (first_relayer, first_address) = next(iter(_addresses(api, namespace).items()))
    assert w3.eth.get_balance(first_address) == 0

    # 2. Funded by a person, the treasury records a top-up and the operator dies before sending it.
    fund(chain, treasury, 5 * ETH, TREASURY_FUNDER)
    assert operators.died_by_sigkill(), "operator did not reach funding.recorded"
    recorded = _funding(api, namespace)["inFlight"]
    assert (recorded["relayer"], recorded["to"], recorded["value"], recorded["nonce"]) == (
        first_relayer,
        first_address,
        str(2 * ETH),
        0,
    )
    assert w3.eth.get_transaction_count(treasury, "pending") == 0  # recorded, not sent
    assert w3.eth.get_balance(first_address) == 0

    # 3. The next operator sends exactly the recorded bytes, once.
    operators.start()
    eventually(lambda: _funding(api, namespace).get("state") == "Funded", what="Funded after the restart")
    assert w3.eth.get_balance(first_address) == 2 * ETH
    assert w3.eth.get_transaction_count(treasury) == 1
    receipt = w3.eth.get_transaction_receipt(recorded["hash"])
    assert receipt["status"] == 1

    # 4. A second relayer; this operator dies right after sending its top-up, before seeing the outcome.
    operators.stop()
    operators.start(kill_at="funding.sent")
    client.CustomObjectsApi(api).patch_namespaced_custom_object_scale(
        GROUP, VERSION, namespace, "relayerpools", POOL, {"spec": {"replicas": 2}}
    )
    assert operators.died_by_sigkill(), "operator did not reach funding.sent"
    second = _funding(api, namespace)["inFlight"]
    assert second["nonce"] == 1 and second["relayer"] != first_relayer

    # 5. The next operator settles it by hash: confirmed, nothing re-sent.
    operators.start()
    funding = eventually(
        lambda: (f := _funding(api, namespace)).get("state") == "Funded" and "inFlight" not in f and f,
        what="second top-up settled",
    )
    addresses = _addresses(api, namespace)
    assert [w3.eth.get_balance(a) for a in addresses.values()] == [2 * ETH, 2 * ETH]
    assert w3.eth.get_transaction_count(treasury) == 2
    assert [(t["relayer"], t["result"], t["nonce"]) for t in funding["transfers"]] == [
        (first_relayer, "Confirmed", 0),
        (second["relayer"], "Confirmed", 1),
    ]
    assert funding["sentLast24h"] == str(4 * ETH)
    fees = sum(
        (r := w3.eth.get_transaction_receipt(t["hash"]))["gasUsed"] * r["effectiveGasPrice"]
        for t in funding["transfers"]
    )
    assert w3.eth.get_balance(treasury) == 5 * ETH - 4 * ETH - fees
    assert int(funding["treasuryBalance"]) == w3.eth.get_balance(treasury)
    # (A TopUpSent event may die with the process that was killed right after sending.)
    assert len(_events(api, namespace, "TopUpConfirmed")) == 2
    assert eventually(lambda: condition(_pool(api, namespace), "Funded")["status"] == "True", what="Funded")

    # 6. The cap: 4 ETH sent today; with dailyCap 4 ETH a third relayer at 0 waits, and the pool says why.
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "relayerpools", POOL, {"spec": {"funding": {"dailyCap": str(4 * ETH)}}}
    )
    client.CustomObjectsApi(api).patch_namespaced_custom_object_scale(
        GROUP, VERSION, namespace, "relayerpools", POOL, {"spec": {"replicas": 3}}
    )
    capped = eventually(
        lambda: (c := condition(_pool(api, namespace), "Funded")) and c["reason"] == "DailyCapReached" and c,
        what="DailyCapReached",
    )
    assert capped["status"] == "False" and str(4 * ETH) in capped["message"]
    assert w3.eth.get_transaction_count(treasury) == 2
    metrics = httpx.get(operators.current.metrics_url, timeout=5).text if operators.current else ""
    state_series = (
        f'msq_operator_pool_funding_state{{namespace="{namespace}",pool="{POOL}",state="DailyCapReached"}}'
    )
    assert f"{state_series} 1.0" in metrics, metrics[-2000:]
    balance_series = (
        f'msq_operator_treasury_balance_wei{{address="{treasury}",namespace="{namespace}",pool="{POOL}"}}'
    )
    assert balance_series in metrics
    assert _events(api, namespace, "DailyCapReached")


def _sent_from(w3: Web3, addresses: set[str], first_block: int) -> list[Any]:
    """Every transaction mined since `first_block` whose sender is one of `addresses`."""
    out = []
    for number in range(first_block, w3.eth.block_number + 1):
        out += [
            tx
            for tx in w3.eth.get_block(number, full_transactions=True)["transactions"]
            if tx["from"] in addresses
        ]
    return out


def test_deleting_a_sweeping_pool_moves_every_balance_to_the_treasury_once(
    api: client.ApiClient, namespace: str, operators: Operators, openbao: OpenBao, chain: Chain
) -> None:
    """Continues the pool above: two relayers at 2 ETH, one at 0 (held back by the cap)."""
    w3 = Web3(Web3.HTTPProvider(chain.rpc_url))
    treasury = _funding(api, namespace)["treasuryAddress"]
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "relayerpools", POOL, {"spec": {"funding": {"sweepOnRemove": True}}}
    )
    eventually(
        lambda: all(r["spec"].get("sweepTo") == treasury for r in list_cr(api, namespace, "relayers")),
        what="relayers told where to sweep",
    )
    addresses = _addresses(api, namespace)
    before = {a: w3.eth.get_balance(a) for a in addresses.values()}
    assert sorted(before.values()) == [0, 2 * ETH, 2 * ETH]
    treasury_before = w3.eth.get_balance(treasury)
    first_block = w3.eth.block_number + 1

    # The operator dies right after recording the first sweep, then the next one right after sending another.
    operators.stop()
    operators.start(kill_at="sweep.recorded")
    client.CustomObjectsApi(api).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, "relayerpools", POOL
    )
    assert operators.died_by_sigkill(), "operator did not reach sweep.recorded"
    # Relayers are removed in parallel: a second sweep may have been recorded just before the kill landed.
    recorded = [r for r in list_cr(api, namespace, "relayers") if (r.get("status") or {}).get("sweep")]
    assert 1 <= len(recorded) <= 2 and not any(r["status"]["sweep"].get("result") for r in recorded)
    assert not _sent_from(w3, set(addresses.values()), first_block)  # recorded, not sent
    if len(recorded) == 1:  # the other one is recorded and sent by the next process, which dies then
        operators.start(kill_at="sweep.sent")
        assert operators.died_by_sigkill(), "operator did not reach sweep.sent"
    operators.start()
    eventually(lambda: not list_cr(api, namespace, "relayers"), timeout=120, what="relayers removed")

    # Each funded relayer sent exactly one transfer, to the treasury, of its balance less the exact fee.
    sweeps = _sent_from(w3, set(addresses.values()), first_block)
    assert sorted(tx["from"] for tx in sweeps) == sorted(a for a, wei in before.items() if wei), sweeps
    for tx in sweeps:
        receipt = w3.eth.get_transaction_receipt(tx["hash"])
        assert tx["to"] == treasury and receipt["status"] == 1
        assert tx["value"] + receipt["gasUsed"] * receipt["effectiveGasPrice"] == before[tx["from"]]
    assert all(w3.eth.get_balance(a) == 0 for a in addresses.values())
    assert w3.eth.get_balance(treasury) - treasury_before == sum(tx["value"] for tx in sweeps)
    assert _events(api, namespace, "SweepConfirmed")  # (one may die with a killed process)
    # Then the access goes; the keys stay.
    root = openbao.client()
    for name in addresses:
        with pytest.raises(hvac.exceptions.InvalidPath):
            root.auth.approle.read_role_id(f"msq-{namespace}-{name}")
        assert root.secrets.kv.v2.read_secret_version(
            path=f"msq-relayer/{namespace}/{name}", mount_point="secret", raise_on_deleted_version=True
        )["data"]["data"]["value"]
