"""The example pools of k8s/examples/networks/, held to the real API server and the real OZ Relayer binary.

1. The API server accepts each example (server-side dry run: schema, defaults, CEL).
2. The OZ config the operator renders from it, built the way the handlers build it (pool -> Relayer through
   the API server again -> the relayer's ConfigMap), has the network OZ defines for that chain: the values
   written below, which are themselves compared to OZ's own network files when its source is available.
3. The OZ binary, started on that config with the env the operator renders, gets past its config-file
   validation, logs in to OpenBao and reads the relayer's key, and only then finds no chain behind the RPC
   URL: it serves its API with the relayer disabled for RPC validation. Configs OZ must refuse are refused.
"""

from __future__ import annotations

import base64
import copy
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client

from msq_devstack import engine
from msq_devstack.kube import KubeControlPlane
from msq_devstack.openbao import OpenBao
from msq_devstack.process import ManagedProcess, free_port, tail
from msq_devstack.redis import Redis
from msq_operator import oz_config
from msq_operator import vault as vault_ops
from msq_operator.render import relayer as render_relayer
from msq_operator.render.meta import ANNOTATION_ENDPOINT
from msq_operator.render.pool import build_relayer
from msq_operator.resources.pool import RelayerPoolSpec
from msq_operator.resources.relayer import RelayerSpec
from tests.support.kube import GROUP, REPO, VERSION, api_client, apply_crds, kubectl, namespace_fixture

Obj = dict[str, Any]

EXAMPLES_DIR = REPO / "k8s" / "examples" / "networks"
namespace = namespace_fixture("networks")

# A start that neither serves nor exits in this time fails the test instead of stalling the run.
OZ_START_TIMEOUT = 90.0
# Every OZ config-file error is wrapped in this by its main (src/main.rs, load_config_file).
OZ_CONFIG_ERROR = "Failed to load config file"


@dataclass(frozen=True)
class Network:
    """What an example must render, written here so that the test means something without OZ's source."""

    oz_name: str  # the network's name in OZ's config/networks files
    chain_id: int
    symbol: str
    eip1559: bool
    is_testnet: bool
    average_blocktime_ms: int
    oz_confirmations: int  # OZ's required_confirmations; an example may wait longer, never less


EXPECTED = {
    "polygon": Network("polygon", 137, "POL", True, False, 2100, 1),
    "polygon-amoy": Network("polygon-amoy", 80002, "POL", True, True, 2100, 1),
    "ethereum": Network("mainnet", 1, "ETH", True, False, 12000, 12),
    "sepolia": Network("sepolia", 11155111, "ETH", True, True, 12000, 6),
    "bsc": Network("binance-smart-chain", 56, "BNB", False, False, 3000, 1),
}


# Tags OZ acts on (constants/network_tags.rs): pricing, resubmission and no-op replacement differ with them.
OZ_BEHAVIOUR_TAGS = {
    "rollup",
    "no-mempool",
    "arbitrum-based",
    "optimism-based",
    "optimism",
    "polygon-zkevm-based",
}


def example(name: str) -> Obj:
    doc: Obj = yaml.safe_load((EXAMPLES_DIR / f"{name}.yaml").read_text())
    return doc


def uses_rpc_secret_only(name: str) -> bool:
    net = example(name)["spec"]["network"]
    return "rpcUrlSecretRef" in net and not net.get("rpcUrls")


class ConfigRejected(AssertionError):
    """OZ exited at start with a config-file error."""


OZ_PARAMS = sorted(EXPECTED)
SECRET_RPC_URL = "https://rpc.provider.example/v1/access-key"


# --- the examples themselves --------------------------------------------------------------------------------


def test_there_is_one_example_per_network_and_nothing_else() -> None:
    assert sorted(p.stem for p in EXAMPLES_DIR.glob("*.yaml")) == sorted(EXPECTED)
    for name in EXPECTED:
        doc = example(name)
        assert (doc["kind"], doc["metadata"]["name"]) == ("RelayerPool", name)
        # Mainnet provider URLs carry access keys: those examples take them from a Secret.
        if not EXPECTED[name].is_testnet:
            assert "rpcUrlSecretRef" in doc["spec"]["network"], name


def _oz_definitions() -> dict[str, Obj]:
    """OZ's EVM network definitions by name, each with what it inherits (`from`) filled in the way OZ merges:
    a child's scalars win, features and tags are the union (config_file/network/evm.rs, merge_with_parent)."""
    folder = engine.oz_networks_dir()
    if folder is None:
        pytest.skip(engine.HOW_TO_ENABLE)
    raw: dict[str, Obj] = {}
    for path in sorted(folder.glob("*.json")):
        for net in json.loads(path.read_text()).get("networks", []):
            if net.get("type") == "evm":
                raw[net["network"]] = net

    def resolved(name: str) -> Obj:
        net = dict(raw[name])
        parent_name = net.pop("from", None)
        if parent_name is None:
            return net
        parent = resolved(parent_name)
        merged = {**parent, **net}
        for key in ("features", "tags"):
            union = list(parent.get(key) or [])
            union += [item for item in net.get(key) or [] if item not in union]
            if key in parent or key in net:
                merged[key] = union
        return merged

    return {name: resolved(name) for name in raw}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_written_values_are_ozs_own(name: str) -> None:
    want = EXPECTED[name]
    oz = _oz_definitions()[want.oz_name]
    assert oz["chain_id"] == want.chain_id
    assert oz["symbol"] == want.symbol
    assert ("eip1559" in (oz.get("features") or [])) is want.eip1559
    assert oz.get("is_testnet", False) is want.is_testnet
    assert oz["average_blocktime_ms"] == want.average_blocktime_ms
    assert oz["required_confirmations"] == want.oz_confirmations
    # None of these chains carries a tag that changes OZ's behaviour, so the examples set none.
    assert not set(oz.get("tags") or []) & OZ_BEHAVIOUR_TAGS


# --- (1) the API server accepts them ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(kube: KubeControlPlane) -> Iterator[client.ApiClient]:
    apply_crds(kube)
    api = api_client(kube)
    yield api
    api.close()


def served(kube: KubeControlPlane, namespace: str, doc: Obj) -> Obj:
    """`doc` as the API server would store it (server-side dry run: validated and defaulted)."""
    out = kubectl(
        kube, "apply", "--dry-run=server", "-n", namespace, "-f", "-", "-o", "json", input=json.dumps(doc)
    ).stdout
    pool: Obj = json.loads(out)
    return pool


def served_pool(kube: KubeControlPlane, namespace: str, name: str) -> Obj:
    """The example file itself through `kubectl apply -f`, as a user applies it."""
    path = EXAMPLES_DIR / f"{name}.yaml"
    out = kubectl(kube, "apply", "--dry-run=server", "-n", namespace, "-f", str(path), "-o", "json").stdout
    pool: Obj = json.loads(out)
    return pool


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_api_server_accepts_the_example(
    kube: KubeControlPlane, api: client.ApiClient, namespace: str, name: str
) -> None:
    pool = served_pool(kube, namespace, name)
    net = pool["spec"]["network"]
    want = EXPECTED[name]
    assert (net["chainId"], net["symbol"], net["eip1559"]) == (want.chain_id, want.symbol, want.eip1559)
    assert net["averageBlocktimeMs"] == want.average_blocktime_ms
    # A dry run stores nothing.
    listed = client.CustomObjectsApi(api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, "relayerpools"
    )
    assert listed["items"] == []


def test_the_api_server_refuses_network_fields_oz_cannot_use(
    kube: KubeControlPlane, api: client.ApiClient, namespace: str
) -> None:
    cases = {
        "averageBlocktimeMs": (0, "spec.network.averageBlocktimeMs"),
        "symbol": ("", "spec.network.symbol"),
        "tags": (["Rollup"], "spec.network.tags[0]"),
    }
    for field, (value, named) in cases.items():
        doc = example("polygon-amoy")
        doc["spec"]["network"][field] = value
        result = kubectl(
            kube, "apply", "--dry-run=server", "-n", namespace, "-f", "-", input=json.dumps(doc), check=False
        )
        assert result.returncode != 0, field
        assert named in result.stderr, (field, result.stderr)


# --- (2) what the operator renders from them ----------------------------------------------------------------


def relayer_of(api: client.ApiClient, pool: Obj) -> Obj:
    """Relayer 0 of the pool as the pool handler creates it, as the API server would store it."""
    spec = RelayerPoolSpec.model_validate(pool["spec"])
    body = build_relayer(pool, spec, 0, draining=False)
    served: Obj = client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, pool["metadata"]["namespace"], "relayers", body, dry_run="All"
    )
    return served


def config_of(secret: Obj) -> Obj:
    config: Obj = json.loads(base64.b64decode(secret["data"][render_relayer.CONFIG_FILE]))
    return config


def rendered_config(relayer: Obj, rpc_secret_url: str | None = None) -> Obj:
    spec = RelayerSpec.model_validate(relayer["spec"])
    return config_of(render_relayer.build_config_secret(relayer, spec, rpc_secret_url))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_rendered_network_is_ozs_definition_of_the_chain(
    kube: KubeControlPlane, api: client.ApiClient, namespace: str, name: str
) -> None:
    secret_url = SECRET_RPC_URL if uses_rpc_secret_only(name) else None
    config = rendered_config(relayer_of(api, served_pool(kube, namespace, name)), secret_url)
    (network,) = config["networks"]
    want = EXPECTED[name]
    assert network["type"] == "evm"
    assert network["chain_id"] == want.chain_id
    assert network["symbol"] == want.symbol
    # OZ prices as EIP-1559 exactly when the feature is listed (models/network/evm/network.rs, is_legacy).
    assert network["features"] == (["eip1559"] if want.eip1559 else [])
    assert network["is_testnet"] is want.is_testnet
    assert network["average_blocktime_ms"] == want.average_blocktime_ms
    assert want.oz_confirmations <= network["required_confirmations"] <= 64
    assert "tags" not in network
    # The relayer runs on that network.
    assert config["relayers"][0]["network"] == network["network"] == example(name)["spec"]["network"]["name"]
    if uses_rpc_secret_only(name):
        # The URL from the Secret, literal: OZ has no env reference for rpc_urls.
        assert network["rpc_urls"] == [SECRET_RPC_URL]
    else:
        assert network["rpc_urls"] == example(name)["spec"]["network"]["rpcUrls"]


# --- (3) the real OZ binary accepts them --------------------------------------------------------------------


@pytest.fixture(scope="module")
def oz_binary() -> Path:
    binary = engine.oz_binary()
    if binary is None:
        pytest.skip(engine.HOW_TO_ENABLE)
    return binary


def closed_url(path: str = "") -> str:
    """An http URL on a loopback port where nothing listens: connections are refused at once."""
    return f"http://127.0.0.1:{free_port()}{path}"


@dataclass
class OzRun:
    process: ManagedProcess
    url: str
    api_key: str
    relayer_id: str
    address: str
    network: str

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", headers={"Authorization": f"Bearer {self.api_key}"}, timeout=5)

    @property
    def log(self) -> str:
        return self.process.log_path.read_text(errors="replace")


def resolve_env(env: list[Obj], secrets_: dict[tuple[str, str], str]) -> dict[str, str]:
    """The container env of a Deployment, with each secretKeyRef looked up in `secrets_`."""
    out: dict[str, str] = {}
    for item in env:
        if "value" in item:
            out[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            out[item["name"]] = secrets_[(ref["name"], ref["key"])]
    return out


def start_oz(
    binary: Path,
    relayer: Obj,
    openbao: OpenBao,
    redis_server: Redis,
    work: Path,
    config: Obj | None = None,
) -> OzRun:
    """Provision the relayer as the operator does (key and AppRole in OpenBao, its Secret's values), write its
    rendered config.json (or `config`), and start OZ with the env of the rendered Deployment."""
    spec = RelayerSpec.model_validate(relayer["spec"])
    names = render_relayer.names_of(relayer)
    path = render_relayer.key_path(spec, names.namespace, names.relayer)
    bao = openbao.client()
    address = vault_ops.ensure_relayer_key(bao, spec.signer.kv_mount, path)
    role = f"msq-{names.namespace}-{names.relayer}"
    creds = vault_ops.ensure_approle(
        bao, role_name=role, policy_name=role, mount=spec.signer.kv_mount, key_path=path
    )
    rpc_secret_url = closed_url() if spec.network.rpc_url_secret_ref is not None else None
    config_secret = render_relayer.build_config_secret(relayer, spec, rpc_secret_url)
    config_dir = work / "config"
    config_dir.mkdir(parents=True)
    (config_dir / "config.json").write_text(json.dumps(config or config_of(config_secret)))

    api_key = secrets.token_urlsafe(32)
    values = {
        (names.secret, render_relayer.SECRET_API_KEY): api_key,
        (names.secret, render_relayer.SECRET_WEBHOOK_SIGNING_KEY): secrets.token_urlsafe(32),
        (names.secret, render_relayer.SECRET_ROLE_ID): creds.role_id,
        (names.secret, render_relayer.SECRET_SECRET_ID): creds.secret_id,
        (names.secret, render_relayer.SECRET_STORAGE_ENCRYPTION_KEY): base64.b64encode(
            secrets.token_bytes(32)
        ).decode(),
        (spec.redis.url_secret_ref.name, spec.redis.url_secret_ref.key): redis_server.url,
    }
    deployment = render_relayer.build_deployment(relayer, spec, config_secret)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = resolve_env(container["env"], values)
    assert len(env["API_KEY"]) >= 32
    app_port = free_port()
    # Only what differs between a pod and a local process: where the config is and which ports to bind.
    env.update(
        CONFIG_DIR=str(config_dir),
        HOST="127.0.0.1",
        APP_PORT=str(app_port),
        METRICS_PORT=str(free_port()),
    )
    process = ManagedProcess(f"oz-{names.relayer}", [str(binary)], work, env=env, cwd=work).start()
    return OzRun(
        process=process,
        url=f"http://127.0.0.1:{app_port}",
        api_key=api_key,
        relayer_id=names.oz_id,
        address=address,
        network=spec.network.name,
    )


def wait_serving_or_exited(run: OzRun, timeout: float = OZ_START_TIMEOUT) -> bool:
    """True once OZ answers /api/v1/health (it serves only after every relayer is initialised), False once it
    has exited; an AssertionError if neither happens in `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not run.process.alive:
            return False
        try:
            if httpx.get(f"{run.url}/api/v1/health", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"OZ neither served nor exited in {timeout:.0f}s:\n{tail(run.process.log_path)}")


@pytest.fixture
def local_pool(kube: KubeControlPlane, openbao: OpenBao, namespace: str) -> Any:
    """An example pool as served, pointed at the local OpenBao, at a closed RPC port and at no gateway."""

    def make(name: str) -> Obj:
        pool = served_pool(kube, namespace, name)
        pool["metadata"].setdefault("annotations", {})[ANNOTATION_ENDPOINT] = closed_url()
        pool["spec"]["signer"]["vaultAddress"] = openbao.addr
        pool["spec"]["signer"]["kvMount"] = openbao.kv_mount
        if pool["spec"]["network"].get("rpcUrls"):
            pool["spec"]["network"]["rpcUrls"] = [closed_url()]
        return pool

    return make


@pytest.mark.parametrize("name", OZ_PARAMS)
def test_oz_accepts_the_rendered_config_and_only_misses_the_chain(
    oz_binary: Path,
    api: client.ApiClient,
    local_pool: Any,
    openbao: OpenBao,
    redis_server: Redis,
    tmp_path: Path,
    name: str,
) -> None:
    relayer = relayer_of(api, local_pool(name))
    run = start_oz(oz_binary, relayer, openbao, redis_server, tmp_path)
    try:
        if not wait_serving_or_exited(run):
            tail_ = tail(run.process.log_path)
            if OZ_CONFIG_ERROR in run.log:
                raise ConfigRejected(f"OZ refused the config of {name}:\n{tail_}")
            raise AssertionError(f"OZ exited at start:\n{tail_}")
        assert OZ_CONFIG_ERROR not in run.log
        assert "disabling relayer" in run.log

        # It read the key from OpenBao with the relayer's AppRole: the address is the operator's.
        reply = run.get(f"/api/v1/relayers/{run.relayer_id}")
        assert reply.status_code == 200, reply.text
        data = reply.json()["data"]
        assert data["address"].lower() == run.address.lower()
        # ... and, with nothing behind the RPC URL, OZ disabled the relayer instead of exiting
        # (domain/relayer/evm/evm_relayer.rs, initialize_relayer).
        assert data["system_disabled"] is True, data
        assert "RpcValidationFailed" in json.dumps(data["disabled_reason"]), data

        # OZ's own view of the network it loaded is the chain's.
        reply = run.get(f"/api/v1/networks/evm:{run.network}")
        assert reply.status_code == 200, reply.text
        net = reply.json()["data"]
        want = EXPECTED[name]
        assert (net["chain_id"], net["symbol"], net["is_testnet"]) == (
            want.chain_id,
            want.symbol,
            want.is_testnet,
        )
        assert net["features"] == (["eip1559"] if want.eip1559 else [])
        assert net["average_blocktime_ms"] == want.average_blocktime_ms
        assert net["required_confirmations"] >= want.oz_confirmations
    finally:
        run.process.stop()


def _with_unknown_network_field(config: Obj) -> Obj:
    config["networks"][0]["explorer"] = "https://polygonscan.com"
    return config


def _with_env_reference_rpc_url(config: Obj) -> Obj:
    config["networks"][0]["rpc_urls"] = [{"type": "env", "value": "RPC_URL"}]
    return config


def _without_symbol(config: Obj) -> Obj:
    del config["networks"][0]["symbol"]
    return config


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        # EvmNetworkConfig denies unknown fields (config_file/network/evm.rs).
        (_with_unknown_network_field, "unknown field `explorer`"),
        # An object in rpc_urls must be {url, weight} (models/relayer/rpc_config.rs).
        (_with_env_reference_rpc_url, "missing field `url`"),
        # EvmNetworkConfig::validate (config_file/network/evm.rs).
        (_without_symbol, "symbol"),
    ],
    ids=["unknown-network-field", "env-reference-rpc-url", "no-symbol"],
)
def test_oz_refuses_a_broken_config_at_start(
    oz_binary: Path,
    api: client.ApiClient,
    local_pool: Any,
    openbao: OpenBao,
    redis_server: Redis,
    tmp_path: Path,
    breakage: Any,
    message: str,
) -> None:
    relayer = relayer_of(api, local_pool("polygon-amoy"))
    config = breakage(copy.deepcopy(rendered_config(relayer)))
    run = start_oz(oz_binary, relayer, openbao, redis_server, tmp_path, config=config)
    try:
        assert wait_serving_or_exited(run) is False, "OZ started on a broken config"
        assert run.process.proc is not None and run.process.proc.returncode != 0
        assert OZ_CONFIG_ERROR in run.log and message in run.log, tail(run.process.log_path)
    finally:
        run.process.stop()


def test_oz_cannot_start_a_relayer_without_a_block_time(
    oz_binary: Path,
    api: client.ApiClient,
    local_pool: Any,
    openbao: OpenBao,
    redis_server: Redis,
    tmp_path: Path,
) -> None:
    # Why the operator always renders average_blocktime_ms: OZ's config-file check lets a network without it
    # through, and OZ fails later, converting the network for the relayer (models/network/evm/network.rs).
    relayer = relayer_of(api, local_pool("polygon-amoy"))
    config = rendered_config(relayer)
    del config["networks"][0]["average_blocktime_ms"]
    run = start_oz(oz_binary, relayer, openbao, redis_server, tmp_path, config=config)
    try:
        assert wait_serving_or_exited(run) is False, "OZ started a relayer without a block time"
        assert OZ_CONFIG_ERROR not in run.log
        assert "has no average_blocktime_ms" in run.log, tail(run.process.log_path)
    finally:
        run.process.stop()


def test_a_pool_that_sets_no_block_time_still_renders_one(
    kube: KubeControlPlane, api: client.ApiClient, namespace: str
) -> None:
    doc = example("polygon-amoy")
    del doc["spec"]["network"]["averageBlocktimeMs"]
    config = rendered_config(relayer_of(api, served(kube, namespace, doc)))
    # The CRD's default, Ethereum's slot time: OZ starts, at worst with tighter EIP-1559 fee caps.
    assert config["networks"][0]["average_blocktime_ms"] == 12000


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"symbol": ""}, "symbol"),
        ({"average_blocktime_ms": 0}, "average_blocktime_ms"),
        ({"tags": ("",)}, "tags"),
    ],
)
def test_the_renderer_refuses_network_values_oz_cannot_use(overrides: dict[str, Any], field: str) -> None:
    params = oz_config.OzRelayerParams(
        relayer_id="r",
        network="polygon-amoy",
        chain_id=80002,
        rpc_urls=("https://rpc-amoy.polygon.technology",),
        signer=oz_config.VaultSignerParams(vault_address="http://127.0.0.1:8200", key_name="k"),
        webhook_url="http://127.0.0.1:9/",
        **overrides,  # type: ignore[arg-type]
    )
    with pytest.raises(ValueError, match=field):
        oz_config.build_oz_config(params)
