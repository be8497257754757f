"""The demo story told by `make demo`: the operator on a local control plane runs a pool; a direct and a
gasless transaction go through the pool's gateway and confirm on anvil; a queue spike scales the pool up."""

from __future__ import annotations

import json
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from kubernetes import client

from msq_contracts.artifacts import load_artifact
from msq_devstack.chain import ANVIL_KEYS
from msq_devstack.overlay import LOCAL_OVERLAY
from msq_devstack.prometheus import Prometheus, start_prometheus
from msq_devstack.scenario import DEPLOYER_KEY, PoolScenario
from msq_devstack.stack import Stack
from msq_devstack.tools import REPO_ROOT

Say = Callable[[str], None]
POOL = "payments"  # the local overlay's pool
API_CLIENT = "payments-backend"  # one of the local overlay's API clients


def show_stack(stack: Stack, say: Say) -> Callable[[], None] | None:
    say("Local stack is up (all on 127.0.0.1):")
    for name, where in stack.endpoints().items():
        say(f"  {name:<11} {where}")
    if stack.kube:
        say(f"  try: {' '.join(stack.kube.kubectl_argv('get', 'relayerpools,relayers', '-A'))}")
    return None


def _calldata(contract, fn: str, *args: object) -> bytes:  # type: ignore[no-untyped-def]
    return bytes.fromhex(contract.encode_abi(fn, list(args))[2:])


def _kubectl_get(s: PoolScenario, say: Say, *what: str) -> None:
    import subprocess

    assert s.stack.kube
    out = subprocess.run(
        s.stack.kube.kubectl_argv("-n", s.namespace, "get", *what), capture_output=True, text=True, timeout=60
    ).stdout
    for line in out.rstrip().splitlines():
        say(f"    {line}")


def _last_event(s: PoolScenario, pool: str, reason: str) -> str:
    """The message of the pool's newest event with `reason` (what `kubectl describe` shows)."""
    events = (
        client.CoreV1Api(s.api)
        .list_namespaced_event(s.namespace, field_selector=f"involvedObject.name={pool},reason={reason}")
        .items
    )
    if not events:
        return ""  # Kopf posts events just after its patch
    newest = max(events, key=lambda e: e.last_timestamp or e.event_time or e.metadata.creation_timestamp)
    return str(newest.message)


def pool_story(stack: Stack, say: Say) -> Callable[[], None]:
    work = Path(tempfile.mkdtemp(prefix="msq-demo-", dir=stack.work_dir))
    say("\n1. Operator, CRDs, Secrets and sample contracts (forwarder, ERC-20, ERC-721) ...")
    s = PoolScenario.start(stack, "demo", work)
    watching: list[Prometheus] = []
    try:
        _tell(s, stack, say, work, watching)
    except BaseException:
        _stop(s, watching)
        raise
    return lambda: _stop(s, watching)


def _stop(s: PoolScenario, watching: list[Prometheus]) -> None:
    for prom in watching:
        prom.stop()
    s.stop()


def _tell(s: PoolScenario, stack: Stack, say: Say, work: Path, watching: list[Prometheus]) -> None:
    say(f"   forwarder {s.contracts.forwarder}, token {s.contracts.token}, nft {s.contracts.nft}")
    engine_name = {"oz": "the real OpenZeppelin Relayer v1.8.0", "dev": "the local stand-in (devrelayer)"}
    say(f"   relayer pods run {engine_name[s.pods.engine]} (MSQ_RELAYER_ENGINE={s.pods.engine})")
    assert stack.kube
    say(f"\n2. kubectl apply -k {LOCAL_OVERLAY.relative_to(REPO_ROOT)}: the repository's RelayerPool")
    say("   (2 relayers, Internal autoscaling 2..3) and ContractPolicy, pointed at this stack's ports by a")
    say("   generated kustomization:")
    started = time.monotonic()
    overlay = s.apply_local_overlay()
    for line in overlay.shown.splitlines():
        say(f"     {line}")
    say(f"   $ {shlex.join(stack.kube.kubectl_argv('-n', s.namespace, 'apply', '-k', str(overlay.path)))}")
    api_key = overlay.api_keys[API_CLIENT]
    funded = s.fund_when_keyed(overlay.pool, ready_timeout=240)
    for address in funded:
        say(f"   key generated in OpenBao for {address}; funded with 100 ETH")
    say(f"   pool Ready after {time.monotonic() - started:.0f}s:")
    _kubectl_get(s, say, "relayerpools")
    _kubectl_get(s, say, "relayers")

    gw = s.gateway(POOL, api_key)
    prom = start_prometheus(s.scrape_jobs(POOL, gw.url), work / "prometheus", stack.log_dir)
    watching.append(prom)
    say(
        f"   Prometheus at {prom.url} scrapes the operator, the gateway and the relayers "
        "(as the chart's monitors do)"
    )
    nft = s.w3.eth.contract(address=s.contracts.nft, abi=load_artifact("SampleNFT")["abi"])
    token = s.w3.eth.contract(address=s.contracts.token, abi=load_artifact("SampleToken")["abi"])
    say(f"\n3. Direct transaction through the gateway at {gw.url}: mint an NFT")
    owner = Account.create().address
    r = gw.direct(s.contracts.nft, _calldata(nft, "mint", owner))
    r.raise_for_status()
    direct_id = r.json()["id"]
    done = gw.wait(direct_id)
    say(
        f"   {done['status']} by relayer {done['relayerId']}, tx {done.get('hash')}; "
        f"NFTs of {owner[:10]}...: {nft.functions.balanceOf(owner).call()}"
    )

    say("\n4. Gasless transaction (ERC-2771, EIP-712 signed by a user with no gas money)")
    deployer = Account.from_key(DEPLOYER_KEY)
    user = Account.from_key(ANVIL_KEYS[3])
    tx = token.functions.mint(user.address, 1000).build_transaction(
        {"from": deployer.address, "nonce": s.w3.eth.get_transaction_count(deployer.address)}
    )
    s.w3.eth.wait_for_transaction_receipt(
        s.w3.eth.send_raw_transaction(deployer.sign_transaction(tx).raw_transaction)
    )
    recipient = Account.create().address
    r = gw.gasless(
        s.w3, s.domain(), ANVIL_KEYS[3], s.contracts.token, _calldata(token, "transfer", recipient, 25)
    )
    r.raise_for_status()
    done = gw.wait(r.json()["id"])
    say(
        f"   {done['status']} by relayer {done['relayerId']}; recipient holds "
        f"{token.functions.balanceOf(recipient).call()} tokens, sent from the user's balance"
    )

    say("\n5. A burst on a congested chain: no blocks while 30 NFT mints arrive; the backlog scales up")
    assert stack.chain
    spike = time.monotonic()
    with stack.chain.congested():
        with ThreadPoolExecutor(8) as ex:
            replies = list(
                ex.map(
                    lambda _: gw.direct(s.contracts.nft, _calldata(nft, "mint", Account.create().address)),
                    range(30),
                )
            )
        for reply in replies:
            reply.raise_for_status()
        s.wait("scale-up", lambda: s.get("relayerpools", POOL)["spec"]["replicas"] == 3, timeout=90)
        took = time.monotonic() - spike
        scaled = s.wait("Scaled event", lambda: _last_event(s, POOL, "Scaled"), timeout=30)
        say(f"   the autoscaler: {scaled}, {took:.1f}s after the burst began")
        say("   blocks resume")
    s.wait("new relayer key", lambda: len(s.addresses(POOL)) == 3)
    s.fund_relayers(POOL)
    s.wait("pool Ready", lambda: s.pool_ready(POOL), timeout=180)
    for reply in replies:
        gw.wait(reply.json()["id"], timeout=180)
    say(f"   all 30 burst transactions confirmed {time.monotonic() - spike:.0f}s after the burst began")
    _kubectl_get(s, say, "relayerpools")
    say("   the backlog is gone; after the stabilization window the pool drains one relayer back to 2 ...")
    s.wait(
        "drained back to 2",
        lambda: len(s.relayers(POOL)) == 2 and s.get("relayerpools", POOL)["spec"]["replicas"] == 2,
        timeout=240,
    )
    s.wait("pool Ready", lambda: s.pool_ready(POOL), timeout=60)
    say(f"   back to 2 relayers {time.monotonic() - spike:.0f}s after the burst began")
    treasury = s.get("relayerpools", POOL)["status"]["funding"]["treasuryAddress"]
    swept = s.wait("sweep to the treasury", lambda: s.w3.eth.get_balance(treasury), timeout=60)
    say(
        f"   the removed relayer's balance went back to the pool's treasury {treasury}: "
        f"{swept / 10**18:.4f} ETH"
    )
    _kubectl_get(s, say, "relayers")
    hand_over(
        s,
        Controls(
            gw.url,
            api_key,
            prom.url,
            direct_id,
            "0x" + _calldata(nft, "mint", Account.create().address).hex(),
        ),
        say,
    )


CONTROLS_HEADER = "Your turn: each line below works against this running stack (paste it into a shell)."
PROMPT = "  $ "


@dataclass(frozen=True)
class Controls:
    """What the handed-over commands point at."""

    gateway_url: str
    api_key: str
    prometheus_url: str
    tx_id: str  # the direct transaction of step 3
    mint_calldata: str


def controls(s: PoolScenario, c: Controls) -> list[tuple[str, str]]:
    """(what it shows, command) pairs a platform engineer can paste; a test runs every one of them."""
    assert s.stack.kube and s.stack.chain
    kubectl = shlex.join(s.stack.kube.kubectl_argv("-n", s.namespace))
    key = shlex.quote(f"X-API-Key: {c.api_key}")
    body = shlex.quote(json.dumps({"to": s.contracts.nft, "data": c.mint_calldata, "gasLimit": 200000}))
    out = [
        ("the custom resources", f"{kubectl} get rp,rl,cp"),
        ("conditions and events of the pool", f"{kubectl} describe rp {POOL}"),
        (
            "scale by hand (the Internal autoscaler takes it back to its own recommendation after the "
            "stabilization window)",
            f"{kubectl} scale rp/{POOL} --replicas=3",
        ),
        (
            "a direct relay (mint an NFT) with the demo's API key",
            f"curl -fsS -X POST {c.gateway_url}/api/v1/relay/direct -H {key} "
            f"-H 'Content-Type: application/json' -d {body}",
        ),
        (
            "a gasless request from a new user with no gas money (signed with EIP-712 by a small client)",
            f"MSQ_API_KEY={shlex.quote(c.api_key)} {shlex.quote(sys.executable)} "
            f"-m msq_devstack.send_gasless --gateway {c.gateway_url} --chain-id {s.stack.chain.chain_id} "
            f"--to {s.contracts.nft} --data {c.mint_calldata}",
        ),
        (
            "the status of the direct transaction of step 3",
            f"curl -fsS {c.gateway_url}/api/v1/relay/status/{c.tx_id} -H {key}",
        ),
        ("gateway metrics", f"curl -fsS {c.gateway_url}/metrics"),
        ("operator metrics", f"curl -fsS {s.operator.metrics_url}"),
        (
            f"the dashboard's numbers in Prometheus (UI at {c.prometheus_url}): transactions by status",
            f"curl -fsS -G {c.prometheus_url}/api/v1/query --data-urlencode "
            + shlex.quote("query=sum by (kind, status) (msq_gateway_relayed_transactions_total) > 0"),
        ),
    ]
    relayers = {r["metadata"]["name"] for r in s.relayers(POOL)}  # not a pod still on its way out
    for name, pod in sorted(s.pods.pods.items()):
        if pod.metrics_port and name in relayers:
            out.append(
                (
                    f"relayer {name} metrics (OZ's Prometheus text)",
                    f"curl -fsS http://127.0.0.1:{pod.metrics_port}/debug/metrics/scrape",
                )
            )
    return out


def hand_over(s: PoolScenario, c: Controls, say: Say) -> None:
    say(f"\n{CONTROLS_HEADER}")
    for what, command in controls(s, c):
        say(f"  # {what}")
        say(f"{PROMPT}{command}")


STEPS: list[Callable[[Stack, Say], Callable[[], None] | None]] = [show_stack, pool_story]


def run(stack: Stack, say: Say) -> list[Callable[[], None]]:
    """Tell the story; returns what to stop (the operator and local pods keep running until then)."""
    cleanups = []
    for step in STEPS:
        cleanup = step(stack, say)
        if cleanup is not None:
            cleanups.append(cleanup)
    return cleanups
