// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ERC2771Context} from "@openzeppelin/contracts/metatx/ERC2771Context.sol";
import {Context} from "@openzeppelin/contracts/utils/Context.sol";

/// @title SampleToken
/// @notice ERC-20 that accepts gasless calls relayed through one trusted ERC2771Forwarder.
/// @dev Every path that reads the caller (transfer, approve, transferFrom, onlyOwner) goes through
/// `_msgSender()`, so a forwarded call acts for the user who signed the request, not for the relayer.
/// Minting is owner-only: the token has a supply to protect, unlike the NFT sample.
contract SampleToken is ERC20, Ownable, ERC2771Context {
    constructor(
        string memory name_,
        string memory symbol_,
        address trustedForwarder_,
        address initialOwner
    ) ERC20(name_, symbol_) Ownable(initialOwner) ERC2771Context(trustedForwarder_) {}

    function mint(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }

    // Context is inherited twice (through ERC20/Ownable and through ERC2771Context); the ERC-2771
    // versions must win or forwarded calls would be attributed to the forwarder.

    function _msgSender() internal view override(Context, ERC2771Context) returns (address) {
        return ERC2771Context._msgSender();
    }

    function _msgData() internal view override(Context, ERC2771Context) returns (bytes calldata) {
        return ERC2771Context._msgData();
    }

    function _contextSuffixLength() internal view override(Context, ERC2771Context) returns (uint256) {
        return ERC2771Context._contextSuffixLength();
    }
}
