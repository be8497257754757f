"""Pure parts of the dev relayer: env settings, config validation, request checks, nonces, signatures."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from msq_devrelayer.api_models import EvmTransactionRequest
from msq_devrelayer.config import parse_config
from msq_devrelayer.errors import StartupError
from msq_devrelayer.nonces import NonceManager
from msq_devrelayer.records import TxRecord
from msq_devrelayer.settings import settings_from_env
from msq_devrelayer.webhooks import sign_body, transaction_update

ENV = {"VAULT_ROLE_ID": "role", "VAULT_SECRET_ID": "s3cr3t-value", "WEBHOOK_SIGNING_KEY": "w" * 40}
CONFIG: dict[str, Any] = {
    "relayers": [
        {
            "id": "r1",
            "name": "r1",
            "network": "anvil",
            "paused": False,
            "network_type": "evm",
            "signer_id": "s1",
            "notification_id": "n1",
            "policies": {"min_balance": 1},
        }
    ],
    "signers": [
        {
            "id": "s1",
            "type": "vault",
            "config": {
                "address": "http://127.0.0.1:8200",
                "role_id": {"type": "env", "value": "VAULT_ROLE_ID"},
                "secret_id": {"type": "env", "value": "VAULT_SECRET_ID"},
                "key_name": "relayers/r1",
                "mount_point": "secret",
            },
        }
    ],
    "notifications": [
        {
            "id": "n1",
            "type": "webhook",
            "url": "http://127.0.0.1:9000/hook",
            "signing_key": {"type": "env", "value": "WEBHOOK_SIGNING_KEY"},
        }
    ],
    "networks": [
        {
            "type": "evm",
            "network": "anvil",
            "chain_id": 31337,
            "required_confirmations": 1,
            "symbol": "ETH",
            "rpc_urls": ["http://127.0.0.1:8545"],
            "features": ["eip1559"],
        }
    ],
}


def mutated(path: str, value: Any) -> dict[str, Any]:
    """CONFIG with one field replaced (or deleted when value is ...)."""
    cfg = copy.deepcopy(CONFIG)
    *parents, last = path.split(".")
    node: Any = cfg
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is ...:
        del node[int(last) if last.isdigit() else last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return cfg


def test_valid_config_resolves_secrets_from_env() -> None:
    cfg = parse_config(CONFIG, ENV)
    assert cfg.relayer_id == "r1" and cfg.network.rpc_urls == ("http://127.0.0.1:8545",)
    assert cfg.signer.secret_id.reveal() == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(cfg.signer)
    assert cfg.policies.min_balance == 1 and cfg.policies_explicit


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        ("relayers.0.paused", ..., "relayers.0.paused"),
        ("relayers.0.id", "a" * 37, "relayers.0.id"),
        ("relayers.0.id", "bad id", "relayers.0.id"),
        ("relayers.0.signer_id", "nope", "relayers.0.signer_id"),
        ("relayers.0.notification_id", "nope", "relayers.0.notification_id"),
        ("relayers.0.network", "mainnet", "relayers.0.network"),
        ("relayers.0.policies", {"gas_price_kap": 1}, "relayers.0.policies.gas_price_kap"),
        ("relayers.0.network_type", "solana", "relayers.0.network_type"),
        ("relayers", [], "relayers"),
        ("signers.0.type", "hsm", "signers.0.type"),
        ("signers.0.type", "local", "signers.0.type"),
        ("signers.0.config.key_name", ..., "signers.0.config.key_name"),
        ("signers.0.config.role_id", {"type": "env", "value": "MISSING_ROLE"}, "signers.0.config.role_id"),
        ("signers.0.config.extra", 1, "signers.0.config.extra"),
        ("notifications", [], "notifications"),
        ("notifications.0.url", "not-a-url", "notifications.0.url"),
        ("networks.0.chain_id", -5, "networks.0.chain_id"),
        ("networks.0.chain_id", "31337x", "networks.0.chain_id"),
        ("networks.0.chain_id", ..., "networks.0.chain_id"),
        ("networks.0.symbol", ..., "networks.0.symbol"),
        ("networks.0.rpc_urls", [], "networks.0.rpc_urls"),
        ("networks.0.rpc_urls", ["localhost:8545"], "networks.0.rpc_urls.0"),
    ],
)
def test_config_oz_would_reject_is_rejected_naming_the_field(path: str, value: Any, named: str) -> None:
    with pytest.raises(StartupError) as err:
        parse_config(mutated(path, value), ENV)
    assert named in str(err.value)


def test_two_relayers_are_refused() -> None:
    cfg = copy.deepcopy(CONFIG)
    cfg["relayers"].append({**cfg["relayers"][0], "id": "r2"})
    with pytest.raises(StartupError, match=r"relayers: .*exactly one relayer"):
        parse_config(cfg, ENV)


def test_short_webhook_signing_key_is_refused() -> None:
    with pytest.raises(StartupError, match=r"notifications\.0\.signing_key"):
        parse_config(CONFIG, {**ENV, "WEBHOOK_SIGNING_KEY": "short"})


def test_api_key_must_have_32_characters() -> None:
    with pytest.raises(StartupError, match="API_KEY"):
        settings_from_env({"API_KEY": "x" * 31, "REDIS_URL": "redis://127.0.0.1"})
    s = settings_from_env({"API_KEY": "x" * 32, "REDIS_URL": "redis://127.0.0.1", "REDIS_KEY_PREFIX": "p"})
    assert s.queue_prefix == "p:queue:" and "x" * 32 not in repr(s)
    assert settings_from_env({"API_KEY": "x" * 32, "REDIS_URL": "redis://h"}).queue_prefix == ""


@pytest.mark.parametrize(
    "body",
    [
        {"to": "0x" + "11" * 20},  # value missing
        {"to": "0x1234", "value": 0},
        {"to": "0x" + "11" * 20, "value": -1},
        {"to": "0x" + "11" * 20, "value": 0, "data": "0xabc"},
        {"to": "0x" + "11" * 20, "value": 0, "speed": "ludicrous"},
        {"to": "0x" + "11" * 20, "value": 0, "speed": "fast", "gas_price": 1},
        {"to": "0x" + "11" * 20, "value": 0, "max_fee_per_gas": 2},
        {"to": "0x" + "11" * 20, "value": 0, "max_fee_per_gas": 1, "max_priority_fee_per_gas": 2},
        {"to": "0x" + "11" * 20, "value": 0, "valid_until": "tomorrow"},
        {"to": "0x" + "11" * 20, "value": 0, "valid_until": "2030-01-01T00:00:00"},
        {"to": "0x" + "11" * 20, "value": 0, "nonce": 5},
        {"value": 0},
    ],
)
def test_bad_transaction_requests_are_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        EvmTransactionRequest.model_validate(body)


def test_good_transaction_requests_pass() -> None:
    for body in (
        {"to": "0x" + "11" * 20, "value": 1},
        {"to": "0x" + "11" * 20, "value": 0, "data": "0x", "gas_limit": 21000, "speed": "safeLow"},
        {"to": "0x" + "11" * 20, "value": 0, "gas_price": 10},
        {
            "to": "0x" + "11" * 20,
            "value": 0,
            "max_fee_per_gas": 2,
            "max_priority_fee_per_gas": 1,
            "valid_until": "2030-01-01T00:00:00Z",
        },
        {"value": 0, "data": "0x6000"},
    ):
        EvmTransactionRequest.model_validate(body)


@settings(max_examples=200)
@given(st.lists(st.tuples(st.sampled_from(["alloc", "release"]), st.integers(0, 50)), max_size=120))
def test_nonces_are_never_handed_out_twice_and_leave_no_gap(ops: list[tuple[str, int]]) -> None:
    nm = NonceManager()
    nm.load(None, [], chain_pending=3, chain_latest=3, highest_held=None)
    held: set[int] = set()
    for op, pick in ops:
        if op == "alloc":
            n = nm.allocate()
            assert n not in held
            held.add(n)
        elif held:
            n = sorted(held)[pick % len(held)]
            held.discard(n)
            nm.release(n)
        # Every nonce below `next` is either held by a transaction or waiting in the free list.
        assert set(range(3, nm.next)) == held | set(nm.free)
        assert not held & set(nm.free)


def test_nonce_load_takes_the_furthest_of_store_chain_and_records() -> None:
    nm = NonceManager()
    nm.load(stored_next=10, stored_free=[2, 7, 12], chain_pending=8, chain_latest=5, highest_held=11)
    assert nm.next == 12
    assert nm.free == [7]  # 2 was mined by someone else; 12 is beyond next
    assert nm.allocate() == 7 and nm.allocate() == 12


def test_webhook_body_and_signature_follow_oz() -> None:
    rec = TxRecord(
        id="t1",
        relayer_id="r1",
        from_address="0x" + "22" * 20,
        status="mined",
        created_at="now",
        value=5,
        nonce=3,
        hash="0x" + "33" * 32,
        raw="0xdead",
    )
    body = transaction_update(rec.response())
    event = json.loads(body)
    assert event["event"] == "transaction_update"
    assert event["payload"]["payload_type"] == "transaction"
    assert event["payload"]["id"] == "t1" and event["payload"]["value"] == "5"
    assert "raw" not in event["payload"]
    expected = base64.b64encode(hmac.new(b"k" * 32, body, hashlib.sha256).digest()).decode()
    assert sign_body(body, "k" * 32) == expected


def test_record_round_trips_and_response_omits_internal_fields() -> None:
    rec = TxRecord(
        id="t1",
        relayer_id="r1",
        from_address="0x" + "22" * 20,
        status="sent",
        created_at="c",
        value=10**30,
        gas_price=7,
        raw="0xff",
        mined_block=9,
    )
    assert TxRecord.from_json(rec.to_json()) == rec
    resp = rec.response()
    assert resp["value"] == str(10**30) and resp["gas_price"] == "7"
    assert not {"raw", "mined_block", "hash", "to"} & set(resp)
