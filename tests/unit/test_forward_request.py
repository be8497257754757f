"""The hand-written EIP-712 / ABI fast paths against the generic implementations they replace."""

from __future__ import annotations

import json
from typing import Any

import eth_keys.backends
import pytest
from eth_abi import decode, encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_hash.auto import keccak
from eth_utils import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from msq_contracts.artifacts import ARTIFACT_NAMES, load_artifact
from msq_contracts.forward_request import (
    EXECUTE_SELECTOR,
    FORWARD_REQUEST_TYPE,
    SECP256K1_HALF_N,
    SECP256K1_N,
    UINT48_MAX,
    UINT256_MAX,
    ForwarderDomain,
    ForwardRequest,
    InvalidSignature,
    checksum_address,
    domain_separator,
    ecc_backend_name,
    encode_execute,
    hash_typed_request,
    normalize_signature,
    recover_signer,
    sign_request,
    typed_data,
)
from msq_contracts.forwarder_errors import (
    EMPTY_REVERT,
    decode_forwarder_error,
    decode_forwarder_revert,
)

KEY = "0x" + "11" * 32
SIGNER = Account.from_key(KEY).address
DOMAIN = ForwarderDomain(
    name="MSQForwarder", chain_id=31337, verifying_contract="0x5FbDB2315678afecb367f032d93F642f64180aa3"
)
REQUEST = ForwardRequest(
    from_=SIGNER,
    to="0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
    value=0,
    gas=100_000,
    nonce=0,
    deadline=UINT48_MAX,
    data=bytes.fromhex("a9059cbb" + "00" * 64),
)
EXECUTE_TUPLE = "(address,address,uint256,uint256,uint48,bytes,bytes)"

raw_addresses = st.binary(min_size=20, max_size=20)
# Both spellings a client may send: lowercase and EIP-55 checksummed.
addresses = st.one_of(raw_addresses.map(lambda b: "0x" + b.hex()), raw_addresses.map(to_checksum_address))
uint256 = st.one_of(st.sampled_from([0, 1, UINT256_MAX]), st.integers(min_value=0, max_value=UINT256_MAX))
uint48 = st.one_of(st.sampled_from([0, UINT48_MAX]), st.integers(min_value=0, max_value=UINT48_MAX))
requests = st.builds(
    ForwardRequest,
    from_=addresses,
    to=addresses,
    value=uint256,
    gas=uint256,
    nonce=uint256,
    deadline=uint48,
    data=st.one_of(st.just(b""), st.binary(max_size=600)),
)
domains = st.builds(
    ForwarderDomain,
    name=st.text(max_size=40),
    chain_id=st.integers(min_value=1, max_value=2**64),
    verifying_contract=addresses,
    version=st.one_of(st.just("1"), st.text(max_size=8)),
)


def _reference_digest(req: ForwardRequest, domain: ForwarderDomain) -> bytes:
    message = encode_typed_data(full_message=typed_data(req, domain))
    return keccak(b"\x19" + message.version + message.header + message.body)


@settings(max_examples=400, deadline=None)
@given(req=requests, domain=domains)
def test_fast_hash_equals_eth_account_typed_data_hash(req: ForwardRequest, domain: ForwarderDomain) -> None:
    assert hash_typed_request(req, domain) == _reference_digest(req, domain)
    assert domain_separator(domain) == encode_typed_data(full_message=typed_data(req, domain)).header


def test_hash_does_not_depend_on_address_spelling() -> None:
    lower = ForwardRequest(**{**REQUEST.__dict__, "from_": REQUEST.from_.lower(), "to": REQUEST.to.lower()})
    lower_domain = ForwarderDomain(DOMAIN.name, DOMAIN.chain_id, DOMAIN.verifying_contract.lower())
    assert hash_typed_request(lower, lower_domain) == hash_typed_request(REQUEST, DOMAIN)


def test_typed_data_is_json_and_names_the_forwarder_type() -> None:
    data = json.loads(json.dumps(typed_data(REQUEST, DOMAIN)))
    assert data["primaryType"] == "ForwardRequest"
    fields = ",".join(f"{f['type']} {f['name']}" for f in data["types"]["ForwardRequest"])
    assert f"ForwardRequest({fields})" == FORWARD_REQUEST_TYPE
    assert FORWARD_REQUEST_TYPE == (
        "ForwardRequest(address from,address to,uint256 value,uint256 gas,uint256 nonce,uint48 deadline,"
        "bytes data)"
    )
    assert data["domain"] == {
        "name": "MSQForwarder",
        "version": "1",
        "chainId": 31337,
        "verifyingContract": DOMAIN.verifying_contract,
    }
    assert data["message"]["data"] == "0x" + REQUEST.data.hex()


@settings(max_examples=50, deadline=None)
@given(req=requests, key=st.integers(min_value=1, max_value=SECP256K1_N - 1))
def test_sign_and_recover_match_eth_account(req: ForwardRequest, key: int) -> None:
    private_key = key.to_bytes(32, "big")
    account = Account.from_key(private_key)
    message = encode_typed_data(full_message=typed_data(req, DOMAIN))
    signature = sign_request(req, private_key, DOMAIN)
    assert signature == bytes(Account.sign_message(message, private_key).signature)
    assert signature[64] in (27, 28)
    assert int.from_bytes(signature[32:64], "big") <= SECP256K1_HALF_N
    assert recover_signer(req, signature, DOMAIN) == account.address
    assert Account.recover_message(message, signature=signature) == account.address


def test_coincurve_backend_is_in_use() -> None:
    # The pure-Python backend is ~50x slower; silently falling back to it would sink gateway throughput.
    assert type(eth_keys.backends.get_backend()).__name__ == "CoinCurveECCBackend"
    assert ecc_backend_name() == "CoinCurveECCBackend"


def _with(signature: bytes, *, r: int | None = None, s: int | None = None, v: int | None = None) -> bytes:
    parts = (
        (int.from_bytes(signature[:32], "big") if r is None else r).to_bytes(32, "big"),
        (int.from_bytes(signature[32:64], "big") if s is None else s).to_bytes(32, "big"),
        bytes((signature[64] if v is None else v,)),
    )
    return b"".join(parts)


def _r_off_the_curve() -> int:
    # x^3 + 7 must be a square mod p for x to be an r that ecrecover can use; find the first x that is not.
    p = 2**256 - 2**32 - 977
    x = 1
    while pow(x**3 + 7, (p - 1) // 2, p) == 1:
        x += 1
    return x


GOOD = sign_request(REQUEST, KEY, DOMAIN)
MALFORMED = {
    "empty": (b"", "65 bytes"),
    "64-byte compact form": (GOOD[:64], "65 bytes"),
    "66 bytes": (GOOD + b"\x00", "65 bytes"),
    "v is 0": (_with(GOOD, v=0), "v must be 27 or 28.*normalize_signature"),
    "v is 1": (_with(GOOD, v=1), "v must be 27 or 28.*normalize_signature"),
    "v is 29": (_with(GOOD, v=29), "v must be 27 or 28, got 29$"),
    "high s": (
        _with(GOOD, s=SECP256K1_N - int.from_bytes(GOOD[32:64], "big"), v=55 - GOOD[64]),
        "s is out of range.*malleable",
    ),
    "s is zero": (_with(GOOD, s=0), "s is out of range"),
    "r is zero": (_with(GOOD, r=0), "r is out of range"),
    "r is n": (_with(GOOD, r=SECP256K1_N), "r is out of range"),
    "r not on the curve": (_with(GOOD, r=_r_off_the_curve()), "does not recover to any public key"),
}


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
def test_malformed_signature_is_rejected_with_a_clear_message(case: str) -> None:
    signature, message = MALFORMED[case]
    with pytest.raises(InvalidSignature, match=message):
        recover_signer(REQUEST, signature, DOMAIN)


def test_invalid_signature_is_a_value_error() -> None:
    assert issubclass(InvalidSignature, ValueError)
    with pytest.raises(InvalidSignature, match="must be bytes"):
        recover_signer(REQUEST, "0x" + GOOD.hex(), DOMAIN)  # type: ignore[arg-type]


def test_normalize_signature_turns_v_zero_one_into_27_28() -> None:
    zero_one = _with(GOOD, v=GOOD[64] - 27)
    assert normalize_signature(zero_one) == GOOD
    assert normalize_signature(GOOD) == GOOD
    assert recover_signer(REQUEST, normalize_signature(zero_one), DOMAIN) == SIGNER


def test_signature_for_another_nonce_recovers_someone_else() -> None:
    stale = ForwardRequest(**{**REQUEST.__dict__, "nonce": 1})
    assert recover_signer(stale, GOOD, DOMAIN) != SIGNER


@settings(max_examples=300, deadline=None)
@given(req=requests, signature=st.one_of(st.binary(min_size=65, max_size=65), st.binary(max_size=200)))
def test_encode_execute_round_trips_through_eth_abi(req: ForwardRequest, signature: bytes) -> None:
    calldata = encode_execute(req, signature)
    assert calldata[:4] == EXECUTE_SELECTOR
    (decoded,) = decode([EXECUTE_TUPLE], calldata[4:])
    fields = (req.from_, req.to, req.value, req.gas, req.deadline, req.data, signature)
    assert decoded == (req.from_.lower(), req.to.lower(), *fields[2:])
    assert calldata[4:] == encode([EXECUTE_TUPLE], [fields])


def test_execute_selector_matches_the_forwarder_abi() -> None:
    (execute,) = [e for e in load_artifact("ERC2771Forwarder")["abi"] if e.get("name") == "execute"]
    (arg,) = execute["inputs"]
    components = [c["name"] for c in arg["components"]]
    # OZ v5's ForwardRequestData carries no nonce: the forwarder uses its own.
    assert components == ["from", "to", "value", "gas", "deadline", "data", "signature"]
    signature = f"execute(({','.join(c['type'] for c in arg['components'])}))"
    assert keccak(signature.encode())[:4] == EXECUTE_SELECTOR


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("from_", "0x1234", "20-byte hex address"),
        ("to", "5FbDB2315678afecb367f032d93F642f64180aa3", "20-byte hex address"),
        ("to", "0x5FbDB2315678afecb367f032d93F642f64180aaZ", "not hexadecimal"),
        ("to", "0x5FbDB2315678afecb367f032d93F642f64180aA3", "EIP-55 checksum"),
        ("value", -1, "uint256"),
        ("gas", 2**256, "uint256"),
        ("nonce", True, "integer"),
        ("deadline", UINT48_MAX + 1, "uint48"),
        ("data", "0x", "bytes"),
    ],
)
def test_request_rejects_malformed_fields(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ForwardRequest(**{**REQUEST.__dict__, field: value})


def test_domain_rejects_malformed_contract() -> None:
    with pytest.raises(ValueError, match="verifying_contract"):
        ForwarderDomain("MSQForwarder", 1, "0xnothex")


@settings(max_examples=200, deadline=None)
@given(raw=raw_addresses)
def test_checksum_address_equals_eth_utils(raw: bytes) -> None:
    assert checksum_address(raw) == to_checksum_address(raw)


def _error_data(signature: str, types: list[str], values: list[Any]) -> bytes:
    return keccak(signature.encode())[:4] + encode(types, values)


@pytest.mark.parametrize(
    ("data", "name", "args"),
    [
        (
            _error_data("ERC2771ForwarderExpiredRequest(uint48)", ["uint48"], [7]),
            "ERC2771ForwarderExpiredRequest",
            {"deadline": 7},
        ),
        (
            _error_data(
                "ERC2771ForwarderInvalidSigner(address,address)", ["address", "address"], [SIGNER, REQUEST.to]
            ),
            "ERC2771ForwarderInvalidSigner",
            {"signer": SIGNER.lower(), "from": REQUEST.to.lower()},
        ),
        (
            _error_data("ERC2771ForwarderMismatchedValue(uint256,uint256)", ["uint256", "uint256"], [1, 2]),
            "ERC2771ForwarderMismatchedValue",
            {"requestedValue": 1, "msgValue": 2},
        ),
        (
            _error_data(
                "ERC2771UntrustfulTarget(address,address)",
                ["address", "address"],
                [REQUEST.to, DOMAIN.verifying_contract],
            ),
            "ERC2771UntrustfulTarget",
            {"target": REQUEST.to.lower(), "forwarder": DOMAIN.verifying_contract.lower()},
        ),
        (_error_data("FailedCall()", [], []), "FailedCall", {}),
        (_error_data("Error(string)", ["string"], ["nope"]), "Error", {"message": "nope"}),
        (_error_data("Panic(uint256)", ["uint256"], [0x11]), "Panic", {"code": 0x11}),
        (b"", EMPTY_REVERT, {}),
        (bytes.fromhex("deadbeef"), "UnknownError(0xdeadbeef)", {}),
        # A known selector with a cut-off payload is still named.
        (
            _error_data("ERC2771ForwarderExpiredRequest(uint48)", ["uint48"], [7])[:10],
            "ERC2771ForwarderExpiredRequest",
            {},
        ),
    ],
)
def test_decode_forwarder_error(data: bytes, name: str, args: dict[str, Any]) -> None:
    revert = decode_forwarder_revert(data)
    assert revert.name == name
    lowered = {k: v.lower() if isinstance(v, str) and k != "message" else v for k, v in revert.args.items()}
    assert lowered == args
    assert decode_forwarder_error("0x" + data.hex()) == name


def test_every_forwarder_abi_error_is_decodable() -> None:
    names = {e["name"] for e in load_artifact("ERC2771Forwarder")["abi"] if e["type"] == "error"}
    for name in names:
        entry = next(e for e in load_artifact("ERC2771Forwarder")["abi"] if e.get("name") == name)
        types = [i["type"] for i in entry["inputs"]]
        values: list[Any] = [{"address": SIGNER, "string": "x"}.get(t, 1) for t in types]
        assert decode_forwarder_error(_error_data(f"{name}({','.join(types)})", types, values)) == name


def test_artifacts_load_as_independent_copies() -> None:
    for name in ARTIFACT_NAMES:
        artifact = load_artifact(name)
        assert artifact["contractName"] == name
        assert artifact["bytecode"].startswith("0x") and len(artifact["bytecode"]) > 1000
        artifact["abi"].clear()
        assert load_artifact(name)["abi"], "a caller's edit must not leak into the cache"
    with pytest.raises(ValueError, match="unknown artifact"):
        load_artifact("Nope")
