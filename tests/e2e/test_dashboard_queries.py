"""Every query of the Grafana dashboard the chart ships, evaluated by a real Prometheus that scrapes the
operator, a pool's gateway and its relayers after real traffic: a query that errors or returns nothing fails.
The chart's alert rules pass `promtool check rules`, and every series each alert reads exists there.

The scrape config stands in for the chart's ServiceMonitor (operator, `honor_labels`, since the operator's
series name the pool's namespace) and gateway PodMonitor (the pod's namespace and the `pool` label as target
labels), as static targets on the local ports."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account

from msq_contracts.artifacts import load_artifact
from msq_devstack.chain import ANVIL_KEYS, Chain
from msq_devstack.kube import KubeControlPlane
from msq_devstack.openbao import OpenBao
from msq_devstack.prometheus import Prometheus, start_prometheus
from msq_devstack.redis import Redis
from msq_devstack.scenario import DEPLOYER_KEY, PoolScenario
from msq_devstack.tools import REPO_ROOT
from tests.support.chart import alert_rule_groups, alert_rules, promql_metric_names, render
from tests.support.scenario import start_scenario

POOL = "payments"
DASHBOARD = REPO_ROOT / "charts/msq-relayer-operator/files/grafana-dashboard.json"
RATE_INTERVAL = "30s"


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of every panel, rows included."""

    def walk(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in panels:
            yield panel
            yield from walk(panel.get("panels") or [])

    board = json.loads(DASHBOARD.read_text())
    return [(p.get("title", "?"), t["expr"]) for p in walk(board["panels"]) for t in p.get("targets", [])]


@pytest.fixture(scope="module")
def scraped(
    kube: KubeControlPlane,
    openbao: OpenBao,
    redis_server: Redis,
    chain: Chain,
    stack_logs: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[PoolScenario, Prometheus]]:
    s = start_scenario("dash", kube, openbao, redis_server, chain, stack_logs, tmp_path_factory)
    prom: Prometheus | None = None
    try:
        s.create("contractpolicies", s.policy_manifest("payments-contracts", {"app": POOL}))
        s.create_funded_pool(
            POOL,
            2,
            autoscaling={
                "mode": "Internal",
                "minReplicas": 2,
                "maxReplicas": 3,
                "targetQueueDepthPerRelayer": 50,
                "pollIntervalSeconds": 1,
            },
            # A treasury (left empty: the relayers are funded above minBalance) for the funding series.
            funding={"minBalance": str(10**18), "targetBalance": str(2 * 10**18), "dailyCap": str(10**19)},
        )
        gw = s.gateway(POOL)
        jobs = s.scrape_jobs(POOL, gw.url)
        prom = start_prometheus(jobs, tmp_path_factory.mktemp("prometheus"), stack_logs)
        s.wait(
            "every target scraped",
            lambda: (
                (up := prom.targets_up())
                and len(up) == sum(len(j.targets) for j in jobs)
                and set(up.values()) == {"up"}
            ),
            timeout=60,
        )

        # Traffic: direct mints, a gasless transfer, and one refused request (an error code to count).
        nft = s.w3.eth.contract(address=s.contracts.nft, abi=load_artifact("SampleNFT")["abi"])
        token = s.w3.eth.contract(address=s.contracts.token, abi=load_artifact("SampleToken")["abi"])
        ids = []
        for _ in range(4):
            call = nft.encode_abi("mint", [Account.create().address])
            r = gw.direct(s.contracts.nft, bytes.fromhex(call[2:]))
            assert r.status_code in (200, 202), r.text
            ids.append(r.json()["id"])
        user = Account.from_key(ANVIL_KEYS[3])
        deployer = Account.from_key(DEPLOYER_KEY)
        tx = token.functions.mint(user.address, 100).build_transaction(
            {"from": deployer.address, "nonce": s.w3.eth.get_transaction_count(deployer.address)}
        )
        s.w3.eth.wait_for_transaction_receipt(
            s.w3.eth.send_raw_transaction(deployer.sign_transaction(tx).raw_transaction)
        )
        transfer = token.encode_abi("transfer", [Account.create().address, 1])
        r = gw.gasless(s.w3, s.domain(), ANVIL_KEYS[3], s.contracts.token, bytes.fromhex(transfer[2:]))
        assert r.status_code in (200, 202), r.text
        ids.append(r.json()["id"])
        refused = gw.direct(Account.create().address, b"\x12\x34\x56\x78")
        assert refused.status_code >= 400
        for tx_id in ids:
            assert gw.wait(tx_id, timeout=120)["status"] == "confirmed"
        time.sleep(5)  # a few scrapes after the last status change
        yield s, prom
    finally:
        if prom is not None:
            prom.stop()
        s.stop()


@pytest.mark.parametrize(("title", "expr"), dashboard_queries(), ids=[t for t, _ in dashboard_queries()])
def test_dashboard_query_returns_data(
    scraped: tuple[PoolScenario, Prometheus], title: str, expr: str
) -> None:
    s, prom = scraped
    promql = (
        expr.replace("$namespace", s.namespace)
        .replace("$pool", POOL)
        .replace("$__rate_interval", RATE_INTERVAL)
    )
    answer = prom.query(promql)
    assert answer["status"] == "success", (title, promql, answer.get("error"))
    assert answer["data"]["result"], f"{title}: no data for {promql}"


def test_dashboard_variables_list_the_pool(scraped: tuple[PoolScenario, Prometheus]) -> None:
    """The dashboard's variables (`label_values(msq_operator_pool_replicas, namespace)`, then `pool`)."""
    s, prom = scraped
    namespaces = httpx.get(
        f"{prom.url}/api/v1/label/namespace/values", params={"match[]": "msq_operator_pool_replicas"}
    ).json()["data"]
    pools = httpx.get(
        f"{prom.url}/api/v1/label/pool/values",
        params={"match[]": f'msq_operator_pool_replicas{{namespace="{s.namespace}"}}'},
    ).json()["data"]
    assert s.namespace in namespaces and pools == [POOL]


PRODUCTION = render("values-production.yaml")


def test_alert_rules_pass_promtool(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(json.dumps({"groups": alert_rule_groups(PRODUCTION)}))
    done = subprocess.run(
        ["promtool", "check", "rules", str(rules)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alert_rules(PRODUCTION))} rules found" in done.stdout, done.stdout


@pytest.mark.parametrize("rule", alert_rules(PRODUCTION), ids=lambda r: r["alert"])
def test_alert_reads_live_series(scraped: tuple[PoolScenario, Prometheus], rule: dict[str, Any]) -> None:
    _, prom = scraped
    answer = prom.query(rule["expr"])
    assert answer["status"] == "success", (rule["alert"], answer.get("error"))
    for name in sorted(promql_metric_names(rule["expr"])):
        assert prom.query(name)["data"]["result"], f"{rule['alert']}: no series {name}"
