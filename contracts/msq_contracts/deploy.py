"""Deploy the forwarder and the sample contracts with web3, and read the forwarder's state.

Transactions are signed locally and sent raw, so this works against any JSON-RPC node (no unlocked
accounts), and every deploy waits for its receipt and fails loudly when the constructor reverted.
"""

from __future__ import annotations

from typing import Any, cast

from eth_account import Account
from eth_hash.auto import keccak
from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3 import Web3
from web3.types import TxParams, TxReceipt

from msq_contracts.artifacts import ArtifactName, load_artifact
from msq_contracts.forward_request import ForwarderDomain, checksum_address

_NONCES_SELECTOR = keccak(b"nonces(address)")[:4]
# Bit i of eip712Domain().fields says field i is used: name, version, chainId, verifyingContract, salt.
_EXPECTED_DOMAIN_FIELDS = 0x0F


class DeployError(RuntimeError):
    """A deployment or setup transaction was mined but reverted, or produced no contract."""


def _fill_fees(w3: Web3, tx: dict[str, Any]) -> None:
    if any(k in tx for k in ("gasPrice", "maxFeePerGas")):
        return
    base_fee = w3.eth.get_block("latest").get("baseFeePerGas")
    if base_fee is None:
        tx["gasPrice"] = w3.eth.gas_price
        return
    priority = w3.eth.max_priority_fee
    # Two base fees of headroom keep the transaction valid through several full blocks.
    tx["maxPriorityFeePerGas"] = priority
    tx["maxFeePerGas"] = 2 * base_fee + priority


def send_signed(
    w3: Web3, private_key: str | bytes, tx: TxParams, *, require_success: bool = True, timeout: float = 60
) -> TxReceipt:
    """Sign `tx` with `private_key`, send it raw and wait for the receipt.

    Fills chainId, nonce (pending, so back-to-back calls do not collide), gas (estimated) and fees when
    absent. With `require_success=False` a reverted transaction returns its receipt (status 0) instead of
    raising, which is how tests show that a rejected request was mined and changed nothing.
    """
    account = Account.from_key(private_key)
    filled: dict[str, Any] = {"from": account.address, **cast(dict[str, Any], tx)}
    filled.setdefault("chainId", w3.eth.chain_id)
    filled.setdefault("nonce", w3.eth.get_transaction_count(account.address, "pending"))
    filled.setdefault("value", 0)
    _fill_fees(w3, filled)
    if "gas" not in filled:
        filled["gas"] = w3.eth.estimate_gas(cast(TxParams, filled))
    filled.pop("from")
    signed = account.sign_transaction(filled)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout)
    if require_success and receipt["status"] != 1:
        raise DeployError(f"transaction {tx_hash.hex()} reverted (block {receipt['blockNumber']})")
    return receipt


def _deploy(w3: Web3, private_key: str | bytes, name: ArtifactName, *args: Any) -> ChecksumAddress:
    artifact = load_artifact(name)
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    data = factory.constructor(*args).data_in_transaction
    receipt = send_signed(w3, private_key, {"data": HexBytes(data)})
    address = receipt.get("contractAddress")
    if not address:
        raise DeployError(f"deploying {name} produced no contract address")
    return Web3.to_checksum_address(address)


def deploy_forwarder(
    w3: Web3, deployer_private_key: str | bytes, name: str = "MSQForwarder"
) -> ChecksumAddress:
    """Deploy OpenZeppelin's ERC2771Forwarder; `name` becomes its EIP-712 domain name (version "1")."""
    return _deploy(w3, deployer_private_key, "ERC2771Forwarder", name)


def deploy_sample_token(
    w3: Web3,
    deployer_private_key: str | bytes,
    forwarder: str,
    name: str = "Sample Token",
    symbol: str = "SMPL",
    owner: str | None = None,
) -> ChecksumAddress:
    """Deploy SampleToken trusting `forwarder`; `owner` (default: the deployer) may mint."""
    owner = owner or Account.from_key(deployer_private_key).address
    return _deploy(
        w3,
        deployer_private_key,
        "SampleToken",
        name,
        symbol,
        Web3.to_checksum_address(forwarder),
        Web3.to_checksum_address(owner),
    )


def deploy_sample_nft(
    w3: Web3,
    deployer_private_key: str | bytes,
    forwarder: str,
    name: str = "Sample NFT",
    symbol: str = "SNFT",
) -> ChecksumAddress:
    """Deploy SampleNFT trusting `forwarder`; anyone may mint (see contracts/src/SampleNFT.sol)."""
    return _deploy(w3, deployer_private_key, "SampleNFT", name, symbol, Web3.to_checksum_address(forwarder))


def encode_nonces_call(owner: str) -> bytes:
    """Calldata of `nonces(owner)`, for callers that run their own (async) eth_call."""
    return _NONCES_SELECTOR + bytes(12) + bytes.fromhex(Web3.to_checksum_address(owner)[2:])


def read_forwarder_nonce(w3: Web3, forwarder_address: str, owner: str) -> int:
    """The nonce the forwarder will use for `owner`'s next request (the one to sign)."""
    result = w3.eth.call(
        {"to": Web3.to_checksum_address(forwarder_address), "data": HexBytes(encode_nonces_call(owner))}
    )
    return int.from_bytes(result, "big")


def read_forwarder_domain(w3: Web3, forwarder_address: str) -> ForwarderDomain:
    """The EIP-712 domain a deployed forwarder reports (ERC-5267), so signers never guess its name."""
    forwarder = w3.eth.contract(
        address=Web3.to_checksum_address(forwarder_address), abi=load_artifact("ERC2771Forwarder")["abi"]
    )
    fields, name, version, chain_id, verifying_contract, _salt, _extensions = (
        forwarder.functions.eip712Domain().call()
    )
    if fields[0] != _EXPECTED_DOMAIN_FIELDS:
        raise ValueError(
            f"forwarder domain uses fields {fields.hex()}, expected name/version/chainId/verifyingContract"
        )
    return ForwarderDomain(
        name=name,
        chain_id=chain_id,
        verifying_contract=checksum_address(bytes.fromhex(verifying_contract[2:])),
        version=version,
    )
