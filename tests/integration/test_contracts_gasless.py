"""Gasless ERC-2771 meta-transactions on a real chain: OZ's ERC2771Forwarder and the sample contracts.

A relayer account pays for `execute`; the user holds no ETH at all. Each rejection is identified by the
custom error the forwarder returns, then sent for real to show the mined transaction changed nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from msq_contracts.artifacts import load_artifact
from msq_contracts.deploy import (
    deploy_forwarder,
    deploy_sample_nft,
    deploy_sample_token,
    read_forwarder_domain,
    read_forwarder_nonce,
    send_signed,
)
from msq_contracts.forward_request import (
    ForwarderDomain,
    ForwardRequest,
    encode_execute,
    execute_gas_limit,
    sign_request,
)
from msq_contracts.forwarder_errors import EMPTY_REVERT, decode_forwarder_error, decode_forwarder_revert
from msq_devstack.chain import ANVIL_KEYS, Chain

DEPLOYER_KEY = ANVIL_KEYS[0]
RELAYER_KEY = ANVIL_KEYS[1]
RELAYER = Account.from_key(RELAYER_KEY).address
REQUEST_GAS = 150_000
# A rejected execute still gets mined when sent with a fixed limit; this one is ample for every case here.
REJECTED_TX_GAS = 400_000

# Runtime that answers any 36-byte call (isTrustedForwarder(address)) with true and otherwise burns all
# but ~64 gas and stops successfully: the worst case for the forwarder's 63/64 gas check.
#   00 CALLDATASIZE PUSH1 0x24 EQ PUSH1 0x11 JUMPI
#   07 JUMPDEST GAS PUSH2 0x0040 LT PUSH1 0x07 JUMPI STOP
#   11 JUMPDEST PUSH1 1 PUSH0 MSTORE PUSH1 0x20 PUSH0 RETURN
GAS_BURNER_RUNTIME = "366024146011575b5a61004010600757005b60015f5260205ff3"
GAS_BURNER_INITCODE = "601a600a5f39601a5ff3" + GAS_BURNER_RUNTIME


@dataclass
class Deployment:
    w3: Web3
    domain: ForwarderDomain
    forwarder: Contract
    token: Contract
    nft: Contract
    untrusting_token: Contract


@pytest.fixture(scope="module")
def env(chain: Chain) -> Deployment:
    w3 = Web3(Web3.HTTPProvider(chain.rpc_url))
    forwarder = deploy_forwarder(w3, DEPLOYER_KEY)
    # Trusts a different forwarder, so ours must refuse to call it.
    other_forwarder = deploy_forwarder(w3, DEPLOYER_KEY, name="OtherForwarder")

    def contract(address: str, name: str) -> Contract:
        return w3.eth.contract(address=Web3.to_checksum_address(address), abi=load_artifact(name)["abi"])

    return Deployment(
        w3=w3,
        domain=read_forwarder_domain(w3, forwarder),
        forwarder=contract(forwarder, "ERC2771Forwarder"),
        token=contract(deploy_sample_token(w3, DEPLOYER_KEY, forwarder), "SampleToken"),
        nft=contract(deploy_sample_nft(w3, DEPLOYER_KEY, forwarder), "SampleNFT"),
        untrusting_token=contract(deploy_sample_token(w3, DEPLOYER_KEY, other_forwarder), "SampleToken"),
    )


def _calldata(contract: Contract, fn: str, *args: Any) -> bytes:
    return bytes.fromhex(contract.encode_abi(fn, args=list(args))[2:])


def _funded_user(env: Deployment, tokens: int = 1_000) -> LocalAccount:
    user: LocalAccount = Account.create()
    mint = _calldata(env.token, "mint", user.address, tokens)
    send_signed(env.w3, DEPLOYER_KEY, {"to": env.token.address, "data": mint})
    return user


def _request(env: Deployment, user: LocalAccount, to: str, data: bytes, **overrides: int) -> ForwardRequest:
    fields: dict[str, Any] = {
        "from_": user.address,
        "to": to,
        "value": 0,
        "gas": REQUEST_GAS,
        "nonce": read_forwarder_nonce(env.w3, env.forwarder.address, user.address),
        "deadline": env.w3.eth.get_block("latest")["timestamp"] + 3600,
        "data": data,
    }
    fields.update(overrides)
    return ForwardRequest(**fields)


def _relay(
    env: Deployment,
    req: ForwardRequest,
    signature: bytes,
    *,
    value: int | None = None,
    gas: int | None = None,
    require_success: bool = True,
) -> TxReceipt:
    return send_signed(
        env.w3,
        RELAYER_KEY,
        {
            "to": env.forwarder.address,
            "data": encode_execute(req, signature),
            "value": req.value if value is None else value,
            "gas": gas or execute_gas_limit(req, signature),
        },
        require_success=require_success,
    )


def _revert_data(
    env: Deployment, method: str, req: ForwardRequest, signature: bytes, value: int, gas: int | None = None
) -> str:
    call: dict[str, Any] = {
        "from": RELAYER,
        "to": env.forwarder.address,
        "data": "0x" + encode_execute(req, signature).hex(),
        "value": hex(value),
    }
    if gas is not None:
        call["gas"] = hex(gas)
    params: list[Any] = [call, "latest"] if method == "eth_call" else [call]
    response = env.w3.provider.make_request(method, params)  # type: ignore[arg-type]
    assert "error" in response, f"{method} unexpectedly succeeded: {response}"
    return str(response["error"].get("data") or "0x")


def _state(env: Deployment, *accounts: str) -> dict[str, int]:
    """Everything a forwarded request could change for these accounts."""
    w3 = env.w3
    snapshot = {
        "forwarder_eth": w3.eth.get_balance(env.forwarder.address),
        "nft_next_id": env.nft.functions.nextTokenId().call(),
        "token_supply": env.token.functions.totalSupply().call(),
    }
    for account in accounts:
        snapshot[f"{account}.eth"] = w3.eth.get_balance(Web3.to_checksum_address(account))
        snapshot[f"{account}.smpl"] = env.token.functions.balanceOf(account).call()
        snapshot[f"{account}.nonce"] = env.forwarder.functions.nonces(account).call()
    return snapshot


def _executed_events(env: Deployment, receipt: TxReceipt) -> list[Any]:
    return list(env.forwarder.events.ExecutedForwardRequest().process_receipt(receipt, errors=DISCARD))


def test_gasless_erc20_transfer_moves_the_users_tokens(env: Deployment) -> None:
    user = _funded_user(env, 1_000)
    recipient = Account.create().address
    req = _request(env, user, env.token.address, _calldata(env.token, "transfer", recipient, 250))
    signature = sign_request(req, user.key, env.domain)
    relayer_eth_before = env.w3.eth.get_balance(RELAYER)

    receipt = _relay(env, req, signature)

    assert env.token.functions.balanceOf(user.address).call() == 750
    assert env.token.functions.balanceOf(recipient).call() == 250
    assert env.w3.eth.get_balance(user.address) == 0, "the user must not need or spend any ETH"
    assert env.w3.eth.get_balance(RELAYER) < relayer_eth_before, "the relayer paid the gas"
    assert receipt["from"] == RELAYER
    assert env.forwarder.functions.nonces(user.address).call() == 1
    (executed,) = _executed_events(env, receipt)
    assert executed["args"]["signer"] == user.address
    assert executed["args"]["success"] is True
    # The token saw the user, not the forwarder, as msg.sender.
    (transfer,) = env.token.events.Transfer().process_receipt(receipt, errors=DISCARD)
    assert transfer["args"]["from"] == user.address


def test_gasless_erc721_mint_and_transfer(env: Deployment) -> None:
    user: LocalAccount = Account.create()
    recipient = Account.create().address
    token_id = env.nft.functions.nextTokenId().call()

    mint = _request(env, user, env.nft.address, _calldata(env.nft, "mint", user.address))
    receipt = _relay(env, mint, sign_request(mint, user.key, env.domain))
    assert env.nft.functions.ownerOf(token_id).call() == user.address
    (minted,) = env.nft.events.Minted().process_receipt(receipt, errors=DISCARD)
    assert minted["args"]["minter"] == user.address, "the forwarder must not appear as the minter"
    assert minted["args"]["tokenId"] == token_id

    # transferFrom checks that _msgSender() owns the token: it only passes if the context suffix is read.
    move = _request(
        env, user, env.nft.address, _calldata(env.nft, "transferFrom", user.address, recipient, token_id)
    )
    assert move.nonce == 1
    _relay(env, move, sign_request(move, user.key, env.domain))
    assert env.nft.functions.ownerOf(token_id).call() == recipient
    assert env.nft.functions.balanceOf(user.address).call() == 0
    assert env.w3.eth.get_balance(user.address) == 0


# A rejected request: what was signed, the signature, and the msg.value the relayer sends with it.
Case = tuple[ForwardRequest, bytes, int]


@dataclass
class Rejection:
    make: Callable[[Deployment, LocalAccount, str], Case]
    error: str
    args: Callable[[Deployment, LocalAccount, ForwardRequest], dict[str, Any]]


def _expired(env: Deployment, user: LocalAccount, recipient: str) -> Case:
    past = env.w3.eth.get_block("latest")["timestamp"] - 1
    transfer = _calldata(env.token, "transfer", recipient, 1)
    req = _request(env, user, env.token.address, transfer, deadline=past)
    return req, sign_request(req, user.key, env.domain), 0


def _other_signer(env: Deployment, user: LocalAccount, recipient: str) -> Case:
    req = _request(env, user, env.token.address, _calldata(env.token, "transfer", recipient, 1))
    return req, sign_request(req, ANVIL_KEYS[2], env.domain), 0


def _untrusting_target(env: Deployment, user: LocalAccount, recipient: str) -> Case:
    req = _request(env, user, env.untrusting_token.address, _calldata(env.token, "transfer", recipient, 1))
    return req, sign_request(req, user.key, env.domain), 0


def _more_value_than_signed(env: Deployment, user: LocalAccount, recipient: str) -> Case:
    req = _request(env, user, env.token.address, _calldata(env.token, "transfer", recipient, 1))
    return req, sign_request(req, user.key, env.domain), 1


def _less_value_than_signed(env: Deployment, user: LocalAccount, recipient: str) -> Case:
    req = _request(env, user, env.token.address, _calldata(env.token, "transfer", recipient, 1), value=5)
    return req, sign_request(req, user.key, env.domain), 0


def _target_reverts(env: Deployment, user: LocalAccount, recipient: str) -> Case:
    # More tokens than the user holds: the token reverts, the forwarder drops its data and reports FailedCall.
    req = _request(env, user, env.token.address, _calldata(env.token, "transfer", recipient, 10**30))
    return req, sign_request(req, user.key, env.domain), 0


REJECTIONS = {
    "expired-deadline": Rejection(
        _expired, "ERC2771ForwarderExpiredRequest", lambda env, user, req: {"deadline": req.deadline}
    ),
    "signed-by-another-key": Rejection(
        _other_signer,
        "ERC2771ForwarderInvalidSigner",
        lambda env, user, req: {"signer": Account.from_key(ANVIL_KEYS[2]).address, "from": user.address},
    ),
    "target-does-not-trust-forwarder": Rejection(
        _untrusting_target,
        "ERC2771UntrustfulTarget",
        lambda env, user, req: {"target": env.untrusting_token.address, "forwarder": env.forwarder.address},
    ),
    "msg-value-above-signed-value": Rejection(
        _more_value_than_signed,
        "ERC2771ForwarderMismatchedValue",
        lambda env, user, req: {"requestedValue": 0, "msgValue": 1},
    ),
    "msg-value-below-signed-value": Rejection(
        _less_value_than_signed,
        "ERC2771ForwarderMismatchedValue",
        lambda env, user, req: {"requestedValue": 5, "msgValue": 0},
    ),
    "target-reverts": Rejection(_target_reverts, "FailedCall", lambda env, user, req: {}),
}


def _lowercase_addresses(args: dict[str, Any]) -> dict[str, Any]:
    return {k: v.lower() if isinstance(v, str) else v for k, v in args.items()}


@pytest.mark.parametrize("case", list(REJECTIONS), ids=list(REJECTIONS))
def test_rejected_request_is_named_and_changes_nothing(env: Deployment, case: str) -> None:
    rejection = REJECTIONS[case]
    user = _funded_user(env)
    recipient = Account.create().address
    req, signature, msg_value = rejection.make(env, user, recipient)
    watched = (user.address, recipient, env.untrusting_token.address)

    for method in ("eth_call", "eth_estimateGas"):
        data = _revert_data(env, method, req, signature, msg_value, REJECTED_TX_GAS)
        revert = decode_forwarder_revert(data)
        assert revert.name == rejection.error, method
        assert _lowercase_addresses(revert.args) == _lowercase_addresses(rejection.args(env, user, req))

    before = _state(env, *watched)
    receipt = _relay(env, req, signature, value=msg_value, gas=REJECTED_TX_GAS, require_success=False)
    assert receipt["status"] == 0
    assert _state(env, *watched) == before


def test_replayed_request_is_rejected_as_invalid_signer(env: Deployment) -> None:
    user = _funded_user(env, 100)
    recipient = Account.create().address
    req = _request(env, user, env.token.address, _calldata(env.token, "transfer", recipient, 40))
    signature = sign_request(req, user.key, env.domain)
    _relay(env, req, signature)
    after_first = _state(env, user.address, recipient)
    assert after_first[f"{recipient}.smpl"] == 40

    # The forwarder hashes with its current nonce (now 1), so the old signature recovers to a stranger.
    revert = decode_forwarder_revert(_revert_data(env, "eth_call", req, signature, 0))
    assert revert.name == "ERC2771ForwarderInvalidSigner"
    assert revert.args["from"].lower() == user.address.lower()
    assert revert.args["signer"].lower() != user.address.lower()
    receipt = _relay(env, req, signature, gas=REJECTED_TX_GAS, require_success=False)
    assert receipt["status"] == 0
    assert _state(env, user.address, recipient) == after_first


@pytest.fixture(scope="module")
def gas_burner(env: Deployment) -> str:
    receipt = send_signed(env.w3, DEPLOYER_KEY, {"data": bytes.fromhex(GAS_BURNER_INITCODE)})
    return str(receipt["contractAddress"])


@pytest.mark.parametrize("request_gas", [21_000, 300_000, 3_000_000])
@pytest.mark.parametrize("data_len", [0, 1_000, 12_000])
def test_execute_gas_limit_always_passes_the_forwarded_gas_check(
    env: Deployment, gas_burner: str, request_gas: int, data_len: int
) -> None:
    user: LocalAccount = Account.create()
    req = _request(env, user, gas_burner, b"\xa5" * data_len, gas=request_gas)
    signature = sign_request(req, user.key, env.domain)
    limit = execute_gas_limit(req, signature)

    receipt = _relay(env, req, signature, gas=limit)
    (executed,) = _executed_events(env, receipt)
    assert executed["args"]["success"] is True, "the target received the full req.gas"
    assert env.forwarder.functions.nonces(user.address).call() == 1


def test_starved_execute_is_an_empty_revert(env: Deployment, gas_burner: str) -> None:
    user: LocalAccount = Account.create()
    req = _request(env, user, gas_burner, b"", gas=1_000_000)
    signature = sign_request(req, user.key, env.domain)
    # Enough to reach the call but not to hand the target its 1M: the forwarder ends in invalid().
    starved = execute_gas_limit(req, signature) - 200_000
    response = env.w3.provider.make_request(
        "eth_call",
        [  # type: ignore[arg-type]
            {
                "from": RELAYER,
                "to": env.forwarder.address,
                "gas": hex(starved),
                "data": "0x" + encode_execute(req, signature).hex(),
            },
            "latest",
        ],
    )
    assert "error" in response, response
    assert decode_forwarder_error(response["error"].get("data")) == EMPTY_REVERT, response
    assert "invalid" in response["error"]["message"].lower(), response
