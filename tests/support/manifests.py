"""Custom resources as a platform engineer would write them (built by the devstack, shared with the demo)."""

from __future__ import annotations

from msq_devstack.scenario import API_KEYS_SECRET, REDIS_SECRET, VAULT_AUTH_SECRET
from msq_devstack.scenario import contract_policy_manifest as contract_policy
from msq_devstack.scenario import pool_manifest as pool

__all__ = ["API_KEYS_SECRET", "REDIS_SECRET", "VAULT_AUTH_SECRET", "contract_policy", "pool"]
