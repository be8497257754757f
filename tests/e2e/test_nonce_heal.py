"""A stuck transaction healed by the operator through the relayer's own API, on the engine the run uses.

The jam is real: mining is paused while the relayer submits three transfers, the first is dropped from
anvil's mempool (as a node restart or a pool eviction would drop it; anvil drops the two queued behind it
with it, the test prints what the node still holds), and mining resumes. The relayer still believes all
three submitted; nothing moves the chain's nonce. The operator sees the oldest pending transaction pass
stuckAfterSeconds while the chain's nonce stands still, records a Replace attempt and asks the relayer to
replace it (PUT), then the next one the chain waits for, in turn. The test then checks every transfer
confirmed at its original nonce, each recipient paid exactly once, the attempts bounded, recorded,
counted and announced, and the record cleared once the nonce moved on.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from kubernetes import client

from msq_devstack.chain import Chain
from msq_devstack.scenario import PoolScenario
from tests.support.relayer_io import rpc
from tests.support.scenario import relayer_client, scenario_fixture

POOL = "healing"
VALUE = 12_345
STUCK_AFTER = 3
FINAL = {"confirmed", "failed", "canceled", "expired"}

scenario = scenario_fixture("heal")


def _known(chain: Chain, tx_hash: str) -> bool:
    return rpc(chain, "eth_getTransactionByHash", [tx_hash]) is not None


def _events(s: PoolScenario, name: str) -> list[Any]:
    return [
        e
        for e in client.CoreV1Api(s.api).list_namespaced_event(s.namespace).items
        if e.involved_object.name == name and e.involved_object.kind == "Relayer"
    ]


def test_a_stuck_nonce_is_replaced_and_the_transactions_behind_it_confirm(scenario: PoolScenario) -> None:
    s = scenario
    assert s.stack.chain
    chain = s.stack.chain
    s.create_funded_pool(
        POOL,
        1,
        relayer={
            "stuckAfterSeconds": STUCK_AFTER,
            # A replacement gets a minute to be mined: OZ broadcasts it from a job of its own.
            "healing": {"replaceAttempts": 2, "retryAfterSeconds": 60},
        },
    )
    (relayer,) = s.relayers(POOL)
    name = relayer["metadata"]["name"]
    api, path = relayer_client(s, relayer)
    (address,) = s.addresses(POOL)
    recipients = [s.w3.eth.account.create().address for _ in range(3)]
    with api:
        with chain.congested():
            ids = []
            for to in recipients:
                r = api.post(
                    path, json={"to": to, "value": VALUE, "data": "0x", "gas_limit": 21_000, "speed": "fast"}
                )
                assert r.status_code == 200, r.text
                ids.append(r.json()["data"]["id"])
            submitted = s.wait(
                "all three submitted",
                lambda: (
                    (txs := [api.get(f"{path}/{i}").json()["data"] for i in ids])
                    and all(t["status"] == "submitted" and t.get("hash") for t in txs)
                    and txs
                ),
                timeout=90,
            )
            first = submitted[0]
            rpc(chain, "anvil_dropTransaction", [first["hash"]])
        # Mining is back; the chain holds the later two behind the gap the dropped one left.
        time.sleep(2)
        held = [
            s.w3.eth.get_transaction_count(address),
            *(_known(chain, t["hash"]) for t in submitted),
        ]
        assert s.w3.eth.get_transaction_count(address) == first["nonce"]

        final = s.wait(
            "all three final",
            lambda: (
                (txs := [api.get(f"{path}/{i}").json()["data"] for i in ids])
                and all(t["status"] in FINAL for t in txs)
                and txs
            ),
            timeout=240,
        )
    assert [t["status"] for t in final] == ["confirmed"] * 3, final
    assert [s.w3.eth.get_balance(to) for to in recipients] == [VALUE] * 3

    # The dropped one was replaced; an attempt only ever went to one of these transactions, each within the
    # bound, and only while it was the nonce the chain waited for (each ended at its own original nonce).
    replaced = [e.message for e in _events(s, name) if e.reason == "Replaced"]
    print(f"replacements: {replaced}; held by the node after the drop: {held}")
    assert any(first["id"] in m for m in replaced), replaced
    per_tx = [sum(i in m for m in replaced) for i in ids]
    assert sum(per_tx) == len(replaced) and max(per_tx) <= 2, replaced
    for tx, before in zip(final, submitted, strict=True):
        assert s.w3.eth.get_transaction(tx["hash"])["nonce"] == before["nonce"], (tx, before)
    s.wait("NonceHealed", lambda: "NonceHealed" in [e.reason for e in _events(s, name)], timeout=60)
    s.wait(
        "the record cleared", lambda: not (s.get("relayers", name).get("status") or {}).get("nonceHealing")
    )
    metrics = httpx.get(s.operator.metrics_url, timeout=5).text
    wanted = {f'namespace="{s.namespace}"', f'relayer="{name}"', 'action="Replace"'}
    counted = [
        line.rsplit(" ", 1)[1]
        for line in metrics.splitlines()
        if line.startswith("msq_operator_nonce_heal_attempts_total{")
        and wanted <= set(line.split("{", 1)[1].split("}", 1)[0].split(","))
    ]
    assert counted == [f"{float(len(replaced))}"], metrics[-2000:]  # one per attempt, counted before it


def test_an_underpriced_transaction_is_healed_once_across_an_operator_kill(scenario: PoolScenario) -> None:
    """Priced under the base fee, a transaction stays in the node's mempool: only a higher fee at its nonce
    mines it. The operator dies by SIGKILL right after recording its first attempt, before asking the relayer;
    the next operator counts that attempt (its replacement is attempt 2) and the transfer happens once."""
    s = scenario
    assert s.stack.chain
    chain = s.stack.chain
    s.restart_operator(kill_at="heal.recorded")
    pool = "underpriced"
    s.create_funded_pool(
        pool,
        1,
        relayer={"stuckAfterSeconds": STUCK_AFTER, "healing": {"replaceAttempts": 2, "retryAfterSeconds": 5}},
    )
    (relayer,) = s.relayers(pool)
    name = relayer["metadata"]["name"]
    (address,) = s.addresses(pool)
    to = s.w3.eth.account.create().address
    api, path = relayer_client(s, relayer)
    with api:
        with chain.on_demand():
            fee = 2 * s.w3.eth.get_block("latest")["baseFeePerGas"] + 1
            # Far above the transaction's fee, far below OZ's default gasPriceCap (100 gwei)
            next_base_fee = 20 * 10**9
            assert fee < next_base_fee
            chain.pause()
            body = {"to": to, "value": VALUE, "data": "0x", "gas_limit": 21_000}
            body |= {"max_fee_per_gas": fee, "max_priority_fee_per_gas": 1}
            r = api.post(path, json=body)
            assert r.status_code == 200, r.text
            tx_id = r.json()["data"]["id"]
            first = s.wait(
                "submitted",
                lambda: (t := api.get(f"{path}/{tx_id}").json()["data"])["status"] == "submitted" and t,
                timeout=90,
            )
            rpc(chain, "anvil_setNextBlockBaseFeePerGas", [hex(next_base_fee)])
            chain.on_demand_again()

            assert s.operator_died_by_sigkill(), "the operator did not reach heal.recorded"
            record = (s.get("relayers", name).get("status") or {}).get("nonceHealing") or {}
            assert (record.get("transactionId"), record.get("attempts"), record.get("result")) == (
                tx_id,
                1,
                "Recorded",
            ), record
            assert s.w3.eth.get_transaction_count(address) == first["nonce"]  # still not mined
            s.restart_operator()
            s.wait(
                "mined",
                lambda: api.get(f"{path}/{tx_id}").json()["data"]["status"] in {"mined", *FINAL},
                timeout=180,
            )
        # Empty blocks again, for the confirmations.
        final = s.wait(
            "final",
            lambda: (t := api.get(f"{path}/{tx_id}").json()["data"])["status"] in FINAL and t,
            timeout=120,
        )
    assert final["status"] == "confirmed", final
    assert final["hash"] != first["hash"], "mined as first priced: it was never stuck"
    assert s.w3.eth.get_transaction(final["hash"])["nonce"] == first["nonce"]
    assert s.w3.eth.get_balance(to) == VALUE
    replaced = [e.message for e in _events(s, name) if e.reason == "Replaced"]
    assert len(replaced) == 1 and "Replace attempt 2 accepted" in replaced[0], replaced
