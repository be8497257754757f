"""`k8s/overlays/local` as a user applies it (`kubectl apply -k`), with this stack's endpoints filled in.

The overlay names the documented local defaults (anvil on :8545, OpenBao on :8200, Redis on :6379); the
devstack starts each on a random port, so a small kustomization in the work folder, with the overlay as its
one resource, points the pool at them. It changes nothing else: the pool, the policy, the scale and the API
keys are the overlay's own."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from msq_devstack.tools import REPO_ROOT

LOCAL_OVERLAY = REPO_ROOT / "k8s" / "overlays" / "local"
POOL_KIND, POLICY_KIND = "RelayerPool", "ContractPolicy"
VAULT_AUTH_SECRET, REDIS_SECRET, API_KEYS_SECRET = (
    "payments-vault-auth",
    "payments-redis",
    "payments-api-keys",
)
# Contract names in the overlay's policy, as the devstack deploys them.
TOKEN_NAME, NFT_NAME = "sample-token", "sample-nft"
HIDDEN = "<the local OpenBao's root token>"


@dataclass(frozen=True)
class LocalEndpoints:
    rpc_url: str
    vault_addr: str
    vault_token: str
    redis_url: str
    forwarder: str
    contracts: dict[str, str]  # overlay contract name -> address on this chain


@dataclass(frozen=True)
class LocalOverlay:
    """The overlay as written and applied: where it is, what it is called and the API keys it defines."""

    path: Path
    pool: str
    policy: str
    api_keys: dict[str, str]

    @property
    def shown(self) -> str:
        """The generated kustomization as printed for the user: the Vault token is left out."""
        text = (self.path / "kustomization.yaml").read_text()
        return re.sub(r"token=\S+", f"token={HIDDEN}", text)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the inline patches) as literal blocks, as a person would write them."""


_Dumper.add_representer(
    str,
    lambda dumper, value: dumper.represent_scalar(
        "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None
    ),
)


def _documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((LOCAL_OVERLAY / name).read_text()) if d]


def overlay_api_keys() -> dict[str, str]:
    """The clearly fake development API keys the overlay generates (name -> key)."""
    (kustomization,) = _documents("kustomization.yaml")
    (gen,) = [g for g in kustomization["secretGenerator"] if g["name"] == API_KEYS_SECRET]
    return dict(str(literal).split("=", 1) for literal in gen["literals"])


def _replaced(secret: str, literal: str) -> dict[str, Any]:
    return {"name": secret, "behavior": "replace", "literals": [literal]}


def build_kustomization(endpoints: LocalEndpoints, directory: Path) -> dict[str, Any]:
    """A kustomization in `directory` over the local overlay that replaces its local endpoints with
    `endpoints` (and a contract address only where this chain's differs from the overlay's)."""
    (pool,) = _documents("relayerpool-patch.yaml")
    (policy,) = _documents("contractpolicy-patch.yaml")
    pool_ops = [
        {"op": "replace", "path": "/spec/network/rpcUrls", "value": [endpoints.rpc_url]},
        {"op": "replace", "path": "/spec/signer/vaultAddress", "value": endpoints.vault_addr},
        {"op": "replace", "path": "/spec/gateway/forwarder/address", "value": endpoints.forwarder},
    ]
    policy_ops = [
        {"op": "replace", "path": f"/spec/contracts/{i}/address", "value": endpoints.contracts[c["name"]]}
        for i, c in enumerate(policy["spec"]["contracts"])
        if endpoints.contracts.get(c["name"], c["address"]).lower() != c["address"].lower()
    ]
    patches = [
        {"target": {"kind": POOL_KIND, "name": pool["metadata"]["name"]}, "patch": yaml.safe_dump(pool_ops)}
    ]
    if policy_ops:
        patches.append(
            {
                "target": {"kind": POLICY_KIND, "name": policy["metadata"]["name"]},
                "patch": yaml.safe_dump(policy_ops),
            }
        )
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        # kustomize takes a base by relative path only.
        "resources": [os.path.relpath(LOCAL_OVERLAY, directory.resolve())],
        "patches": patches,
        "secretGenerator": [
            _replaced(VAULT_AUTH_SECRET, f"token={endpoints.vault_token}"),
            _replaced(REDIS_SECRET, f"url={endpoints.redis_url}"),
        ],
        # The overlay's own name references, so the pool follows the replaced Secrets' new names.
        "configurations": ["kustomizeconfig.yaml"],
    }


def write_local_overlay(directory: Path, endpoints: LocalEndpoints) -> LocalOverlay:
    directory.mkdir(parents=True, exist_ok=True)
    header = (
        "# Written by the devstack: k8s/overlays/local with this stack's endpoints (random local ports).\n"
        f"#   kubectl apply -k {directory} -n <namespace>\n"
    )
    body = yaml.dump(build_kustomization(endpoints, directory), Dumper=_Dumper, sort_keys=False)
    (directory / "kustomization.yaml").write_text(header + body)
    (directory / "kustomizeconfig.yaml").write_text((LOCAL_OVERLAY / "kustomizeconfig.yaml").read_text())
    (pool,) = _documents("relayerpool-patch.yaml")
    (policy,) = _documents("contractpolicy-patch.yaml")
    return LocalOverlay(directory, pool["metadata"]["name"], policy["metadata"]["name"], overlay_api_keys())
