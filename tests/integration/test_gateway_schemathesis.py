"""Property-based requests from the gateway's own OpenAPI document: no input makes it fail with a 5xx.

The app runs in-process (ASGI) against real Redis and anvil with a deployed forwarder, so the nonce read is
real. No relayer is configured and no generated target can be an allowed contract (the allowed one is not an
address the generator would produce), so nothing is ever relayed; `/readyz` is left out because with no
relayer it reports 503 by design.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from msq_devstack.chain import Chain
from msq_devstack.redis import Redis
from msq_gateway.app import create_app
from msq_gateway.devpool import deploy_samples
from tests.support.gateway import CLIENT_KEY, config_doc

ALLOWED = "0x" + "7e" * 19 + "01"


@pytest.fixture(scope="module")
def gateway_schema(chain: Chain, redis_server: Redis, tmp_path_factory: pytest.TempPathFactory) -> BaseSchema:
    samples = deploy_samples(chain)
    doc = config_doc(
        chain_id=chain.chain_id,
        rpc_url=chain.rpc_url,
        forwarder=samples.forwarder,
        redis_url=redis_server.url,
        key_prefix="msq-gw-fuzz",
        contracts=[{"address": ALLOWED, "allowAllMethods": True, "maxValue": "1000"}],
        quotas=[{"name": "q", "windowSeconds": 60, "maxTransactions": 1000}],
    )
    doc["apiKeys"][0]["quota"] = "q"
    path = Path(tmp_path_factory.mktemp("gw-fuzz")) / "gateway.yaml"
    path.write_text(yaml.safe_dump(doc))
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(path, watch_interval=0))


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_errors(gateway_schema: BaseSchema, mode: GenerationMode) -> None:
    operations = [r.ok() for r in gateway_schema.get_all_operations()]  # type: ignore[union-attr]
    operations = [op for op in operations if op.path != "/readyz"]
    assert len(operations) == 7
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=100,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(headers={"X-API-Key": CLIENT_KEY}, checks=checks)

        try:
            run()
        except Unsatisfiable:
            # Operations without inputs (/healthz, /metrics) have no invalid form to generate.
            assert mode is GenerationMode.NEGATIVE and operation.path in ("/healthz", "/metrics")
