"""Contracts for gasless (ERC-2771) relaying: committed artifacts and the Python side of the forwarder.

- `artifacts`: ABI and bytecode of OZ's ERC2771Forwarder and the sample token/NFT (`load_artifact`).
- `forward_request`: EIP-712 ForwardRequest hashing, signing, recovery and `execute` calldata.
- `forwarder_errors`: names the custom error in a forwarder revert.
- `deploy`: web3 deployment and forwarder reads (nonce, EIP-712 domain).
"""
