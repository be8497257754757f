// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {ERC2771Context} from "@openzeppelin/contracts/metatx/ERC2771Context.sol";
import {Context} from "@openzeppelin/contracts/utils/Context.sol";

/// @title SampleNFT
/// @notice ERC-721 that accepts gasless calls relayed through one trusted ERC2771Forwarder.
/// @dev Open mint: anyone may mint to any address, so a user with no ETH can mint through the
/// forwarder without an owner in the loop. This is a sample for demos and tests; who may mint a real
/// collection is decided by the gateway's ContractPolicy or by the collection's own access control.
contract SampleNFT is ERC721, ERC2771Context {
    uint256 private _nextTokenId = 1;

    /// @notice Records who asked for the mint, so a forwarded mint can be told apart from a direct one.
    event Minted(address indexed minter, address indexed to, uint256 indexed tokenId);

    constructor(
        string memory name_,
        string memory symbol_,
        address trustedForwarder_
    ) ERC721(name_, symbol_) ERC2771Context(trustedForwarder_) {}

    /// @notice Mints the next token id (starting at 1) to `to` and returns it.
    /// @dev `_safeMint` refuses contracts that cannot receive ERC-721 tokens, so a mint never strands a token.
    function mint(address to) external returns (uint256 tokenId) {
        tokenId = _nextTokenId++;
        _safeMint(to, tokenId);
        emit Minted(_msgSender(), to, tokenId);
    }

    /// @notice The id the next `mint` will assign.
    function nextTokenId() external view returns (uint256) {
        return _nextTokenId;
    }

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
