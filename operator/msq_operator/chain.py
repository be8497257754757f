"""The operator's own reads and writes on the chain, for treasury top-ups (JSON-RPC through web3)."""

from __future__ import annotations

import requests
from web3 import Web3
from web3.exceptions import TransactionNotFound, Web3Exception, Web3RPCError

from msq_operator.render.funding import Outcome, Transfer, settle

# What a chain read or write raises when the RPC cannot be reached or refuses.
RPC_ERRORS = (requests.RequestException, Web3Exception)

# What nodes answer when the same signed transaction arrives again (geth, anvil, erigon, nethermind):
# the first copy is in the pool or already mined, so a re-broadcast has nothing more to do.
_ALREADY_SENT = ("already known", "known transaction", "nonce too low", "already imported", "alreadyknown")


class ChainClient:
    def __init__(self, rpc_url: str, timeout: float = 10) -> None:
        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))

    def balance(self, address: str) -> int:
        return int(self.w3.eth.get_balance(Web3.to_checksum_address(address)))

    def nonce(self, address: str, block: str = "latest") -> int:
        return int(self.w3.eth.get_transaction_count(Web3.to_checksum_address(address), block))  # type: ignore[arg-type]

    def fees(self) -> tuple[int, int]:
        """(maxFeePerGas, maxPriorityFeePerGas): room for the base fee to double, as wallets price; on a
        chain without a base fee, its gas price twice."""
        base = self.w3.eth.get_block("latest").get("baseFeePerGas")
        if base is None:  # no EIP-1559 on this chain: the node's gas price, paid in full
            price = int(self.w3.eth.gas_price)
            return price, price
        tip = int(self.w3.eth.max_priority_fee)
        return 2 * int(base) + tip, tip

    def send_raw(self, raw: str) -> None:
        try:
            self.w3.eth.send_raw_transaction(raw)
        except Web3RPCError as e:
            if not any(s in str(e).lower() for s in _ALREADY_SENT):
                raise

    def receipt_status(self, tx_hash: str) -> int | None:
        """1 or 0 for a mined transaction, None while it is not mined (or unknown to the node)."""
        try:
            receipt = self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return None
        return int(receipt["status"])

    def settle_recorded(self, sender: str, transfer: Transfer) -> Outcome:
        """What became of a transfer recorded before it was sent: the sender's mined nonce is read before
        the receipt (see render/funding.settle); while it is in flight its same signed bytes are broadcast
        again, which the chain takes at most once."""
        outcome = settle(transfer, self.nonce(sender, "latest"), self.receipt_status(transfer.hash))
        if outcome == "InFlight":
            self.send_raw(transfer.raw)
        return outcome
