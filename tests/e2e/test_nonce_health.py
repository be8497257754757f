"""Nonce health on a running relayer (the real OZ Relayer where built): in sequence while it works alone; a
transaction sent with its key from outside (the chain's nonce passes the relayer's counter) turns
NonceHealthy False with reason Drift and both nonces in the message, and the metrics show the two nonces.
With healing on, the operator heals it by restarting the relayer once for that chain nonce (both engines
take the chain's nonce as their counter's floor at start): the condition is back to InSequence and the next
transaction confirms (without the restart, OZ signs it with the used nonce and fails it as "consumed
externally")."""

from __future__ import annotations

import httpx
from eth_account import Account
from kubernetes import client

from msq_devstack.scenario import PoolScenario
from msq_operator.resources import GROUP, VERSION
from tests.support.scenario import relayer_client, scenario_fixture

POOL = "nonces"
FINAL = {"confirmed", "failed", "canceled", "expired"}


scenario = scenario_fixture("nonce")


def _nonce_condition(s: PoolScenario, relayer: str) -> dict[str, str]:
    conds = (s.get("relayers", relayer).get("status") or {}).get("conditions") or []
    return next((c for c in conds if c["type"] == "NonceHealthy"), {})


def test_a_nonce_used_behind_the_relayers_back_is_drift(scenario: PoolScenario) -> None:
    s = scenario
    # Healing off at first, so the drift stays to be read; switched on for the pool further down.
    (address,) = s.create_funded_pool(POOL, 1, relayer={"healing": {"enabled": False}})
    (relayer,) = [r["metadata"]["name"] for r in s.relayers(POOL)]
    healthy = s.wait(
        "NonceHealthy", lambda: (c := _nonce_condition(s, relayer)).get("status") == "True" and c
    )
    assert healthy["reason"] == "InSequence" and "chain nonce 0" in healthy["message"], healthy

    # The same key used outside the relayer: one transfer straight to the chain.
    assert s.stack.openbao and s.stack.chain
    key = s.stack.openbao.client().secrets.kv.v2.read_secret_version(
        path=f"msq-relayer/{s.namespace}/{relayer}", mount_point="secret", raise_on_deleted_version=True
    )["data"]["data"]["value"]
    outside = Account.from_key(key)
    assert outside.address == address
    tx = {
        "chainId": s.stack.chain.chain_id,
        "nonce": s.w3.eth.get_transaction_count(address),
        "to": address,
        "value": 0,
        "gas": 21_000,
        "maxFeePerGas": 2 * s.w3.eth.get_block("latest")["baseFeePerGas"] + 10**9,
        "maxPriorityFeePerGas": 10**9,
    }
    s.w3.eth.wait_for_transaction_receipt(
        s.w3.eth.send_raw_transaction(outside.sign_transaction(tx).raw_transaction)
    )

    drift = s.wait(
        "Drift", lambda: (c := _nonce_condition(s, relayer)).get("reason") == "Drift" and c, timeout=60
    )
    assert drift["status"] == "False"
    assert "chain nonce 1" in drift["message"] and "next nonce 0" in drift["message"], drift
    metrics = httpx.get(s.operator.metrics_url, timeout=5).text
    for source, value in (("chain", "1.0"), ("relayer", "0.0")):
        line = (
            f'msq_operator_relayer_nonce{{namespace="{s.namespace}",relayer="{relayer}",source="{source}"}}'
        )
        assert f"{line} {value}" in metrics, metrics[-3000:]
    assert (
        f'msq_operator_relayer_oldest_pending_seconds{{namespace="{s.namespace}",relayer="{relayer}"}}'
        in metrics
    )

    assert "healing is off" in drift["message"], drift
    client.CustomObjectsApi(s.api).patch_namespaced_custom_object(
        GROUP,
        VERSION,
        s.namespace,
        "relayerpools",
        POOL,
        {"spec": {"relayer": {"healing": {"enabled": True}}}},
    )
    s.wait("InSequence", lambda: _nonce_condition(s, relayer).get("reason") == "InSequence", timeout=120)
    resynced = s.get("relayers", relayer)["metadata"]["annotations"]["healing.msq.io/nonce-resync"]
    assert resynced == "1", resynced
    api, path = relayer_client(s, s.get("relayers", relayer))
    with api:
        to = s.w3.eth.account.create().address
        sent = api.post(path, json={"to": to, "value": 1, "data": "0x", "gas_limit": 21_000, "speed": "fast"})
        assert sent.status_code == 200, sent.text
        tx_id = sent.json()["data"]["id"]
        done = s.wait(
            "the next transaction final",
            lambda: (t := api.get(f"{path}/{tx_id}").json()["data"])["status"] in FINAL and t,
            timeout=180,
        )
    assert done["status"] == "confirmed" and s.w3.eth.get_balance(to) == 1, done
    assert s.w3.eth.get_transaction(done["hash"])["nonce"] == 1
