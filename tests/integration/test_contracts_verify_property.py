"""The gateway's Python signature check accepts exactly what the deployed forwarder's `verify` accepts.

If they disagreed, the gateway would either relay requests the forwarder rejects (relayer gas burned on
a revert) or refuse requests that are valid on chain.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from eth_account import Account
from eth_hash.auto import keccak
from hypothesis import event, given, settings
from hypothesis import strategies as st
from web3 import Web3
from web3.contract import Contract

from msq_contracts.artifacts import load_artifact
from msq_contracts.deploy import (
    deploy_forwarder,
    deploy_sample_token,
    read_forwarder_domain,
    read_forwarder_nonce,
    send_signed,
)
from msq_contracts.forward_request import (
    SECP256K1_N,
    UINT48_MAX,
    UINT256_MAX,
    ForwarderDomain,
    ForwardRequest,
    InvalidSignature,
    encode_execute,
    recover_signer,
    sign_request,
)
from msq_devstack.chain import ANVIL_KEYS, Chain

# A key whose forwarder nonce is already 2, so "current nonce" is not always 0.
SEASONED_KEY = "0x" + "5e" * 32
DAY = 86_400


@dataclass
class Env:
    w3: Web3
    domain: ForwarderDomain
    forwarder: Contract
    trusting_target: str
    untrusting_targets: tuple[str, ...]
    now: int


@pytest.fixture(scope="module")
def env(chain: Chain) -> Env:
    w3 = Web3(Web3.HTTPProvider(chain.rpc_url))
    forwarder = deploy_forwarder(w3, ANVIL_KEYS[0], name="PropertyForwarder")
    domain = read_forwarder_domain(w3, forwarder)
    token = deploy_sample_token(w3, ANVIL_KEYS[0], forwarder)
    other = deploy_sample_token(w3, ANVIL_KEYS[0], deploy_forwarder(w3, ANVIL_KEYS[0]))
    seasoned = Account.from_key(SEASONED_KEY).address
    # Any call the token accepts; it only has to consume a nonce.
    total_supply_call = keccak(b"totalSupply()")[:4]
    for _ in range(2):
        req = ForwardRequest(
            seasoned,
            token,
            0,
            100_000,
            read_forwarder_nonce(w3, forwarder, seasoned),
            UINT48_MAX,
            total_supply_call,
        )
        send_signed(
            w3,
            ANVIL_KEYS[1],
            {"to": forwarder, "data": encode_execute(req, sign_request(req, SEASONED_KEY, domain))},
        )
    assert read_forwarder_nonce(w3, forwarder, seasoned) == 2
    return Env(
        w3=w3,
        domain=domain,
        forwarder=w3.eth.contract(address=forwarder, abi=load_artifact("ERC2771Forwarder")["abi"]),
        trusting_target=token,
        # An EOA (no code) and a contract trusting another forwarder.
        untrusting_targets=(Account.create().address, other),
        now=w3.eth.get_block("latest")["timestamp"],
    )


private_keys = st.integers(min_value=1, max_value=SECP256K1_N - 1).map(
    lambda k: "0x" + k.to_bytes(32, "big").hex()
)
# Far from the chain clock on either side, so the block that eth_call runs in cannot flip the outcome.
FUTURE, PAST = "future", "past"
deadline_kinds = st.sampled_from([FUTURE, FUTURE, FUTURE, PAST])
TAMPERINGS = ("none", "v-zero-one", "high-s", "truncated", "extended", "random-bytes", "bit-flip-r", "zero-r")


def _tamper(signature: bytes, how: str, noise: bytes) -> bytes:
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    if how == "v-zero-one":
        return signature[:64] + bytes((v - 27,))
    if how == "high-s":
        # The same ECDSA signature in its malleable twin form: ecrecover accepts it, OZ must not.
        return r + (SECP256K1_N - s).to_bytes(32, "big") + bytes((55 - v,))
    if how == "truncated":
        return signature[:64]
    if how == "extended":
        return signature + b"\x00"
    if how == "random-bytes":
        return noise[:64] + bytes((27 + noise[64] % 2,))
    if how == "bit-flip-r":
        return bytes((r[0] ^ 0x01,)) + signature[1:]
    if how == "zero-r":
        return bytes(32) + signature[32:]
    return signature


@settings(max_examples=300, deadline=None)
@given(
    signer_key=private_keys,
    from_kind=st.sampled_from(["signer", "signer", "signer", "stranger", "seasoned"]),
    stranger_key=private_keys,
    target=st.sampled_from(["trusting", "trusting", "trusting", "untrusting-eoa", "untrusting-contract"]),
    value=st.one_of(st.just(0), st.integers(min_value=0, max_value=UINT256_MAX)),
    gas=st.one_of(st.just(0), st.integers(min_value=0, max_value=UINT256_MAX)),
    nonce_kind=st.sampled_from(["current", "current", "current", "other"]),
    other_nonce=st.integers(min_value=0, max_value=UINT256_MAX),
    deadline_kind=deadline_kinds,
    deadline_offset=st.one_of(st.just(None), st.integers(min_value=DAY, max_value=10**9)),
    data=st.one_of(st.just(b""), st.binary(max_size=300)),
    tampering=st.sampled_from(("none",) * len(TAMPERINGS) + TAMPERINGS),
    noise=st.binary(min_size=65, max_size=65),
)
def test_python_signature_check_agrees_with_forwarder_verify(
    env: Env,
    signer_key: str,
    from_kind: str,
    stranger_key: str,
    target: str,
    value: int,
    gas: int,
    nonce_kind: str,
    other_nonce: int,
    deadline_kind: str,
    deadline_offset: int | None,
    data: bytes,
    tampering: str,
    noise: bytes,
) -> None:
    from_key = {"signer": signer_key, "stranger": stranger_key, "seasoned": SEASONED_KEY}[from_kind]
    from_address = Account.from_key(from_key).address
    current_nonce = read_forwarder_nonce(env.w3, env.forwarder.address, from_address)
    nonce = current_nonce if nonce_kind == "current" else other_nonce
    if deadline_kind == FUTURE:
        deadline = UINT48_MAX if deadline_offset is None else env.now + deadline_offset
    else:
        deadline = 0 if deadline_offset is None else max(0, env.now - deadline_offset)
    to = {
        "trusting": env.trusting_target,
        "untrusting-eoa": env.untrusting_targets[0],
        "untrusting-contract": env.untrusting_targets[1],
    }[target]
    # Lowercase on purpose: both address spellings must hash the same.
    req = ForwardRequest(from_address.lower(), to, value, gas, nonce, deadline, data)
    signing_key = SEASONED_KEY if from_kind == "seasoned" else signer_key
    signature = _tamper(sign_request(req, signing_key, env.domain), tampering, noise)

    try:
        signed_by_from = recover_signer(req, signature, env.domain) == from_address
    except InvalidSignature:
        signed_by_from = False
    python_accepts = (
        signed_by_from and nonce == current_nonce and target == "trusting" and deadline_kind == FUTURE
    )

    event(f"accepted={python_accepts}")
    event(f"tampering={tampering}")
    on_chain = env.forwarder.functions.verify(
        (from_address, to, value, gas, deadline, data, signature)
    ).call()
    assert on_chain is python_accepts, {
        "from_kind": from_kind,
        "target": target,
        "nonce_kind": nonce_kind,
        "deadline": deadline,
        "tampering": tampering,
        "signed_by_from": signed_by_from,
    }
