"""The OZ config.json renderer: OZ's shape, no secrets in the file, and OZ's refusals raised early."""

from __future__ import annotations

import json

import pytest

from msq_devrelayer.config import parse_config
from msq_devrelayer.errors import StartupError
from msq_operator.oz_config import (
    ENV_VAULT_ROLE_ID,
    ENV_VAULT_SECRET_ID,
    ENV_WEBHOOK_SIGNING_KEY,
    EnvRef,
    OzRelayerParams,
    RelayerPolicies,
    VaultSignerParams,
    build_oz_config,
    required_env,
)

ADDRESS = "0x" + "ab" * 20


def params(**overrides: object) -> OzRelayerParams:
    base: dict[str, object] = dict(
        relayer_id="payments-0",
        network="polygon-amoy",
        chain_id=80002,
        rpc_urls=("https://rpc-amoy.polygon.technology",),
        signer=VaultSignerParams(
            vault_address="https://vault.example:8200",
            key_name="msq/payments/payments-0",
            mount_point="secret",
            relayer_address=ADDRESS,
        ),
        webhook_url="http://payments-gateway.msq.svc:8080/api/v1/webhooks/relayer",
        required_confirmations=3,
    )
    base.update(overrides)
    return OzRelayerParams(**base)  # type: ignore[arg-type]


def test_renders_ozs_shape_for_one_vault_relayer() -> None:
    cfg = build_oz_config(params())
    assert set(cfg) == {"relayers", "signers", "notifications", "networks"}
    (relayer,) = cfg["relayers"]
    assert relayer == {
        "id": "payments-0",
        "name": "payments-0",
        "network": "polygon-amoy",
        "paused": False,
        "network_type": "evm",
        "signer_id": "payments-0",
        "notification_id": "payments-0",
    }
    (signer,) = cfg["signers"]
    assert signer == {
        "id": "payments-0",
        "type": "vault",
        "config": {
            "address": "https://vault.example:8200",
            "role_id": {"type": "env", "value": ENV_VAULT_ROLE_ID},
            "secret_id": {"type": "env", "value": ENV_VAULT_SECRET_ID},
            "key_name": "msq/payments/payments-0",
            "mount_point": "secret",
        },
    }
    (note,) = cfg["notifications"]
    assert note == {
        "id": "payments-0",
        "type": "webhook",
        "url": "http://payments-gateway.msq.svc:8080/api/v1/webhooks/relayer",
        "signing_key": {"type": "env", "value": ENV_WEBHOOK_SIGNING_KEY},
    }
    (network,) = cfg["networks"]
    assert network == {
        "type": "evm",
        "network": "polygon-amoy",
        "chain_id": 80002,
        "required_confirmations": 3,
        "symbol": "ETH",
        "rpc_urls": ["https://rpc-amoy.polygon.technology"],
        "features": ["eip1559"],
    }


def test_the_file_holds_no_secret_and_no_relayer_address() -> None:
    # The vault signer config denies unknown fields in OZ: the relayer address must not be rendered.
    text = json.dumps(build_oz_config(params()))
    assert ADDRESS not in text
    assert '"plain"' not in text


def test_policies_render_only_what_is_set() -> None:
    policies = RelayerPolicies(
        gas_price_cap=200 * 10**9,
        min_balance=10**17,
        whitelist_receivers=(ADDRESS,),
        eip1559_pricing=True,
        gas_limit_estimation=False,
    )
    cfg = build_oz_config(params(policies=policies))
    assert cfg["relayers"][0]["policies"] == {
        "gas_price_cap": 200 * 10**9,
        "min_balance": 10**17,
        "whitelist_receivers": [ADDRESS],
        "eip1559_pricing": True,
        "gas_limit_estimation": False,
    }
    assert "policies" not in build_oz_config(params())["relayers"][0]


def test_legacy_network_has_no_eip1559_feature_and_rpc_urls_are_literal() -> None:
    cfg = build_oz_config(params(eip1559=False, rpc_urls=("https://a.example/key", "https://b.example")))
    network = cfg["networks"][0]
    assert network["features"] == []
    # OZ reads rpc_urls entries as strings or {url, weight}; an env reference there would be refused.
    assert network["rpc_urls"] == ["https://a.example/key", "https://b.example"]
    assert required_env(params()) == (ENV_VAULT_ROLE_ID, ENV_VAULT_SECRET_ID, ENV_WEBHOOK_SIGNING_KEY)


def test_secret_rpc_url_is_tried_first_then_the_plain_ones() -> None:
    from msq_operator.render.relayer import rpc_urls
    from msq_operator.resources.common import Network

    net = Network.model_validate(
        {"name": "amoy", "chainId": 80002, "rpcUrls": ["https://public.example", "https://key.example/k"]}
    )
    assert rpc_urls(net, "https://key.example/k") == ("https://key.example/k", "https://public.example")
    assert rpc_urls(net, None) == ("https://public.example", "https://key.example/k")


def test_unsigned_webhook_has_no_signing_key() -> None:
    cfg = build_oz_config(params(webhook_signing=False))
    assert "signing_key" not in cfg["notifications"][0]
    assert ENV_WEBHOOK_SIGNING_KEY not in required_env(params(webhook_signing=False))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"relayer_id": "x" * 37}, "relayer_id"),
        ({"relayer_id": "bad.id"}, "relayer_id"),
        ({"chain_id": -1}, "chain_id"),
        ({"rpc_urls": ()}, "rpc_urls"),
        ({"rpc_urls": ("localhost:8545",)}, "rpc url"),
        ({"webhook_url": "gateway:8080"}, "webhook_url"),
        ({"required_confirmations": -1}, "required_confirmations"),
        ({"policies": RelayerPolicies(whitelist_receivers=("0x1234",))}, "whitelist_receivers"),
        ({"policies": RelayerPolicies(min_balance=-1)}, "min_balance"),
    ],
)
def test_refuses_what_oz_would_refuse(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_oz_config(params(**overrides))


def test_env_reference_names_are_checked() -> None:
    with pytest.raises(ValueError, match="environment variable name"):
        EnvRef("not a name")


def test_rendered_config_is_accepted_by_the_dev_relayer_with_its_env() -> None:
    # The dev relayer validates like OZ: what the operator renders must load, resolving the env references.
    env = {ENV_VAULT_ROLE_ID: "role", ENV_VAULT_SECRET_ID: "secret", ENV_WEBHOOK_SIGNING_KEY: "k" * 32}
    loaded = parse_config(build_oz_config(params()), env)
    assert loaded.relayer_id == "payments-0"
    assert loaded.network.chain_id == 80002 and loaded.network.eip1559
    assert loaded.network.required_confirmations == 3
    assert loaded.signer.key_name == "msq/payments/payments-0"
    assert loaded.signer.role_id.reveal() == "role"
    assert loaded.webhook is not None and loaded.webhook.signing_key is not None
    with pytest.raises(StartupError, match=ENV_VAULT_SECRET_ID):
        parse_config(build_oz_config(params()), {ENV_VAULT_ROLE_ID: "r", ENV_WEBHOOK_SIGNING_KEY: "k" * 32})
