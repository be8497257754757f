"""anvil is real: a signed EIP-1559 transfer is mined and its receipt read."""

from eth_account import Account
from web3 import Web3

from msq_devstack.chain import ANVIL_KEYS, Chain


def test_signed_eip1559_transfer_is_mined(chain: Chain) -> None:
    w3 = Web3(Web3.HTTPProvider(chain.rpc_url))
    sender = Account.from_key(ANVIL_KEYS[0])
    receiver = Account.create().address
    base_fee = w3.eth.get_block("latest")["baseFeePerGas"]
    tx = {
        "type": 2,
        "chainId": chain.chain_id,
        "nonce": w3.eth.get_transaction_count(sender.address),
        "to": receiver,
        "value": 12345,
        "gas": 21000,
        "maxPriorityFeePerGas": 1,
        "maxFeePerGas": base_fee * 2 + 1,
    }
    tx_hash = w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10)
    assert receipt["status"] == 1
    assert receipt["type"] == 2
    assert w3.eth.get_balance(receiver) == 12345
