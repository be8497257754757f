"""ContractPolicy spec: what a pool's gateway will relay."""

from __future__ import annotations

from pydantic import Field

from msq_operator.resources.common import Spec

KIND = "ContractPolicy"
PLURAL = "contractpolicies"


class LabelSelectorRequirement(Spec):
    key: str
    operator: str
    values: list[str] = Field(default_factory=list)


class LabelSelector(Spec):
    match_labels: dict[str, str] = Field(default_factory=dict, alias="matchLabels")
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list, alias="matchExpressions")


class AllowedContract(Spec):
    address: str
    name: str | None = None
    methods: list[str] = Field(default_factory=list)
    max_value: str = Field(default="0", alias="maxValue")
    direct: bool = True
    gasless: bool = True


class Quota(Spec):
    api_key: str = Field(alias="apiKey")
    max_transactions: int | None = Field(default=None, alias="maxTransactions")
    max_gas: str | None = Field(default=None, alias="maxGas")
    window_seconds: int = Field(default=3600, alias="windowSeconds")


class ContractPolicySpec(Spec):
    pool_selector: LabelSelector = Field(alias="poolSelector")
    contracts: list[AllowedContract]
    blocked_users: list[str] = Field(default_factory=list, alias="blockedUsers")
    quotas: list[Quota] = Field(default_factory=list)
