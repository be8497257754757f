"""The stand-in's transaction signer produces exactly eth_account's bytes, hash and signature."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from eth_utils import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from msq_devrelayer.signer import KeySigner

pytestmark = pytest.mark.unit

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
uint = st.integers(min_value=0, max_value=2**256 - 1)
small = st.integers(min_value=0, max_value=2**64 - 1)
address = st.binary(min_size=20, max_size=20).map(lambda b: to_checksum_address("0x" + b.hex()))
data = st.binary(max_size=300).map(lambda b: "0x" + b.hex())


@st.composite
def transactions(draw: st.DrawFn) -> dict[str, Any]:
    tx: dict[str, Any] = {
        "chainId": draw(st.integers(min_value=1, max_value=2**32)),
        "nonce": draw(small),
        "gas": draw(st.integers(min_value=21000, max_value=30_000_000)),
        "value": draw(uint),
        "data": draw(data),
    }
    to = draw(st.none() | address)
    if to is not None:
        tx["to"] = to
    if draw(st.booleans()):
        tx.update(type=2, maxFeePerGas=draw(small), maxPriorityFeePerGas=draw(small))
    else:
        tx["gasPrice"] = draw(small)
    return tx


@settings(max_examples=300, deadline=None)
@given(transactions())
def test_signatures_are_eth_accounts(tx: dict[str, Any]) -> None:
    mine = KeySigner(KEY).sign(tx)
    theirs = Account.from_key(KEY).sign_transaction(tx)
    assert mine.raw_transaction == theirs.raw_transaction
    assert mine.hash == theirs.hash
    assert (mine.r, mine.s, mine.v) == (theirs.r, theirs.s, theirs.v)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"nonce": -1}, "nonce"),
        ({"value": 2**256}, "value"),
        ({"gas": "21000"}, "gas"),
        ({"to": "0x1234"}, "to"),
        ({"data": "zz"}, "data"),
    ],
)
def test_a_field_it_cannot_encode_is_refused_by_name(change: dict[str, Any], named: str) -> None:
    tx = {"chainId": 1, "nonce": 0, "gas": 21000, "value": 0, "data": "0x", "gasPrice": 1, **change}
    with pytest.raises(ValueError, match=named):
        KeySigner(KEY).sign(tx)


def test_the_key_is_not_in_its_repr() -> None:
    signer = KeySigner(KEY)
    assert KEY.hex() not in repr(signer) and signer.address in repr(signer)
