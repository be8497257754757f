"""The whole story on real parts: the operator on a real API server renders a pool; each relayer Deployment
runs as a local process of the chosen relayer engine (the real OZ Relayer where it is built) with exactly the
rendered env and config.json, fetching its key from OpenBao;
the gateway runs with its rendered config. Direct and gasless transactions confirm on anvil; queue depth
scales the pool up and, once it drops, down through a drain that loses nothing and sweeps the removed
relayer's balance to the treasury. The pool and its policy are the repository's k8s/overlays/local, applied
with `kubectl apply -k` as a user would."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from eth_account import Account

from msq_contracts.artifacts import load_artifact
from msq_devstack.chain import ANVIL_KEYS
from msq_devstack.overlay import overlay_api_keys
from msq_devstack.relayers import fund
from msq_devstack.scenario import DEPLOYER_KEY, PoolScenario
from tests.support.scenario import scenario_fixture

POOL = "payments"  # the local overlay's pool
API_KEY = overlay_api_keys()["payments-backend"]
TARGET_PER_RELAYER = 5  # the local overlay's targetQueueDepthPerRelayer


scenario = scenario_fixture("e2e")


def _token(s: PoolScenario):  # type: ignore[no-untyped-def]
    return s.w3.eth.contract(address=s.contracts.token, abi=load_artifact("SampleToken")["abi"])


def _nft(s: PoolScenario):  # type: ignore[no-untyped-def]
    return s.w3.eth.contract(address=s.contracts.nft, abi=load_artifact("SampleNFT")["abi"])


def _calldata(contract, fn: str, *args: object) -> bytes:  # type: ignore[no-untyped-def]
    return bytes.fromhex(contract.encode_abi(fn, list(args))[2:])


def _routable(s: PoolScenario, gw) -> int:  # type: ignore[no-untyped-def]
    """How many relayers the gateway would route to, from its own metrics."""
    text = gw.http.get("/metrics").text
    return sum(
        1
        for line in text.splitlines()
        if line.startswith("msq_gateway_relayer_routable{") and line.rstrip().endswith(" 1.0")
    )


def _drain_report(s: PoolScenario, names: list[str]) -> list[dict[str, object]]:
    """What keeps a drain from finishing: the fields the operator's removal decision reads."""
    out: list[dict[str, object]] = []
    for r in s.relayers(POOL):
        if r["metadata"]["name"] in names:
            st = r.get("status") or {}
            out.append(
                {
                    "name": r["metadata"]["name"],
                    "generation": r["metadata"].get("generation"),
                    "pending": st.get("pending"),
                    "queueDepth": st.get("queueDepth"),
                    "nonce": st.get("nonce"),
                    "conditions": [
                        (c["type"], c["status"], c.get("reason"), c.get("observedGeneration"))
                        for c in st.get("conditions", [])
                    ],
                }
            )
    return out


def test_pool_ready_then_direct_and_gasless_confirm(scenario: PoolScenario) -> None:
    s = scenario
    started = time.monotonic()
    s.apply_local_overlay()
    spec = s.get("relayerpools", POOL)["spec"]
    assert (spec["replicas"], spec["autoscaling"]["targetQueueDepthPerRelayer"]) == (2, TARGET_PER_RELAYER)
    s.fund_when_keyed(POOL)
    print(f"pool of 2 Ready {time.monotonic() - started:.1f}s after kubectl apply -k")

    gw = s.gateway(POOL, API_KEY)
    # The overlay's policy is the one enforced: the token's owner-only mint is not among its methods.
    refused = gw.direct(s.contracts.token, _calldata(_token(s), "mint", Account.create().address, 1))
    assert (refused.status_code, refused.json()["code"]) == (403, "method_not_allowed"), refused.text
    user = Account.from_key(ANVIL_KEYS[3])
    # Direct: the relayer itself calls the NFT's open mint.
    minted_to = Account.create().address
    r = gw.direct(s.contracts.nft, _calldata(_nft(s), "mint", minted_to))
    assert r.status_code in (200, 202), r.text
    assert gw.wait(r.json()["id"])["status"] == "confirmed"
    assert _nft(s).functions.balanceOf(minted_to).call() == 1

    # Gasless: the user's tokens move, the user pays no gas.
    tx = (
        _token(s)
        .functions.mint(user.address, 1000)
        .build_transaction(
            {
                "from": Account.from_key(DEPLOYER_KEY).address,
                "nonce": s.w3.eth.get_transaction_count(Account.from_key(DEPLOYER_KEY).address),
            }
        )
    )
    s.w3.eth.wait_for_transaction_receipt(
        s.w3.eth.send_raw_transaction(Account.from_key(DEPLOYER_KEY).sign_transaction(tx).raw_transaction)
    )
    eth_before = s.w3.eth.get_balance(user.address)
    recipient = Account.create().address
    data = _calldata(_token(s), "transfer", recipient, 7)
    r = gw.gasless(s.w3, s.domain(), ANVIL_KEYS[3], s.contracts.token, data)
    assert r.status_code in (200, 202), r.text
    assert gw.wait(r.json()["id"])["status"] == "confirmed"
    assert _token(s).functions.balanceOf(recipient).call() == 7
    assert _token(s).functions.balanceOf(user.address).call() == 993
    assert s.w3.eth.get_balance(user.address) == eth_before


def test_queue_spike_scales_up_and_drop_scales_down_without_loss(scenario: PoolScenario) -> None:
    s = scenario
    assert s.stack.redis is not None and s.stack.chain is not None
    gw = s.gateway(POOL, API_KEY)
    before = {r["metadata"]["name"] for r in s.relayers(POOL)}
    assert len(before) == 2
    # A real burst on a congested chain: no block is made while the relayers accept 30 transactions, so
    # every one stays outstanding and each relayer's backlog (status.queueDepth) rises past the target.
    sent: list[str] = []
    burst = 6 * TARGET_PER_RELAYER
    spike = time.monotonic()
    with s.stack.chain.congested():
        with ThreadPoolExecutor(8) as pool:
            replies = list(
                pool.map(
                    lambda _: gw.direct(
                        s.contracts.nft, _calldata(_nft(s), "mint", Account.create().address)
                    ),
                    range(burst),
                )
            )
        assert all(resp.status_code in (200, 202) for resp in replies), [x.text for x in replies][:3]
        sent += [resp.json()["id"] for resp in replies]
        s.wait("scale to 3", lambda: s.get("relayerpools", POOL)["spec"]["replicas"] == 3, timeout=90)
        depth = s.get("relayerpools", POOL)["status"].get("queueDepth")
        print(f"backlog {depth} -> replicas 3, {time.monotonic() - spike:.1f}s after the burst began")
    new = s.wait(
        "new relayer",
        lambda: [
            x
            for x in s.relayers(POOL)
            if x["metadata"]["name"] not in before and x.get("status", {}).get("address")
        ],
    )[0]
    new_name = new["metadata"]["name"]
    fund(s.stack.chain, new["status"]["address"], 10**20, ANVIL_KEYS[1])
    s.wait(
        "new relayer ready",
        lambda: any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in s.get("relayers", new_name)["status"].get("conditions", [])
        ),
        timeout=120,
    )
    print(f"scale-up reaction: burst -> new relayer ready {time.monotonic() - spike:.1f}s")
    # The gateway's health view catches up with the new relayer and its reloaded config within seconds.
    s.wait(
        "gateway routes to 3 relayers",
        lambda: gw.http.get("/readyz").status_code == 200 and _routable(s, gw) == 3,
        timeout=60,
    )

    # New traffic reaches the new relayer (round robin over 3 active relayers).
    used: set[str] = set()
    for _ in range(9):
        to = Account.create().address
        resp = gw.direct(s.contracts.nft, _calldata(_nft(s), "mint", to))
        assert resp.status_code in (200, 202), resp.text
        sent.append(resp.json()["id"])
        used.add(resp.json()["relayerId"])
    assert new_name in used, used

    # Load has dropped: after the stabilization window the pool returns to 2, draining one relayer.
    s.wait("scale back to 2", lambda: s.get("relayerpools", POOL)["spec"]["replicas"] == 2, timeout=240)
    s.wait(
        "a draining relayer",
        lambda: [x["metadata"]["name"] for x in s.relayers(POOL) if x["spec"].get("draining")],
    )
    addresses = {x["metadata"]["name"]: x["status"]["address"] for x in s.relayers(POOL)}
    drain_block = s.w3.eth.block_number
    # Keep sending while it drains: nothing goes to a draining relayer, nothing is lost. (This traffic may
    # make the autoscaler take the drain back and later drain another relayer: which one goes is the pool's
    # choice, so the test follows the pool to 2 relayers, none draining.)
    for _ in range(6):
        to = Account.create().address
        resp = gw.direct(s.contracts.nft, _calldata(_nft(s), "mint", to))
        assert resp.status_code in (200, 202), resp.text
        sent.append(resp.json()["id"])
    try:
        s.wait(
            "drained relayer removed",
            lambda: len(rs := s.relayers(POOL)) == 2 and not any(x["spec"].get("draining") for x in rs),
            timeout=240,
        )
    except TimeoutError as e:
        raise AssertionError(f"{e}; still there: {_drain_report(s, list(addresses))}") from None
    (removed,) = set(addresses) - {x["metadata"]["name"] for x in s.relayers(POOL)}
    drained_address = addresses[removed]
    # The overlay sweeps on removal: the removed relayer's balance went to the treasury, less the exact fee.
    treasury = s.get("relayerpools", POOL)["status"]["funding"]["treasuryAddress"]
    assert s.w3.eth.get_balance(drained_address) == 0
    sweeps = [
        tx
        for n in range(drain_block, s.w3.eth.block_number + 1)
        for tx in s.w3.eth.get_block(n, full_transactions=True)["transactions"]
        if tx["from"] == drained_address and tx["to"] == treasury
    ]
    assert len(sweeps) == 1, sweeps
    (sweep,) = sweeps
    receipt = s.w3.eth.get_transaction_receipt(sweep["hash"])
    mined = receipt["blockNumber"]
    before = s.w3.eth.get_balance(drained_address, block_identifier=mined - 1)
    assert sweep["value"] + receipt["gasUsed"] * receipt["effectiveGasPrice"] == before
    credited = s.w3.eth.get_balance(treasury, mined) - s.w3.eth.get_balance(treasury, mined - 1)
    assert credited == sweep["value"]
    statuses = [gw.wait(i, timeout=180)["status"] for i in sent]
    assert statuses == ["confirmed"] * len(sent)
    assert len(s.relayers(POOL)) == 2
    # The removed relayer's key stays in Vault (it may still hold funds).
    spec = s.get("relayerpools", POOL)["spec"]
    assert s.stack.openbao is not None
    kept = s.stack.openbao.client().secrets.kv.v2.read_secret_version(
        path=f"{spec['signer']['keyPathPrefix']}/{s.namespace}/{removed}",
        mount_point=spec["signer"]["kvMount"],
        raise_on_deleted_version=True,
    )
    assert kept["data"]["data"]["value"]
