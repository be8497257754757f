"""Property-based requests from OZ Relayer's own OpenAPI document against the stand-in (a real process on
real Redis, OpenBao and anvil): whatever the body, path or query, it never answers with a 5xx.

Only the routes the stand-in serves are generated (devrelayer/README.md lists what it leaves out). The
relayer id in the path is the real one, so requests reach the handlers instead of stopping at "not found".
Only the status class is checked (no 5xx): where the stand-in's answers differ from OZ's document on purpose,
devrelayer/CONFORMANCE.md says so, and the conformance suite holds those differences to the real engine.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from msq_devstack.chain import Chain
from msq_devstack.openbao import OpenBao
from msq_devstack.redis import Redis
from msq_devstack.relayers import LocalRelayer, provision_relayer, start_relayer

OPENAPI_PATH = Path(__file__).resolve().parents[1] / "reference" / "oz-relayer-openapi.json"
SERVED = {
    ("GET", "/api/v1/health"),
    ("GET", "/api/v1/ready"),
    ("GET", "/api/v1/relayers"),
    ("GET", "/api/v1/relayers/{relayer_id}"),
    ("GET", "/api/v1/relayers/{relayer_id}/status"),
    ("GET", "/api/v1/relayers/{relayer_id}/balance"),
    ("POST", "/api/v1/relayers/{relayer_id}/transactions"),
    ("GET", "/api/v1/relayers/{relayer_id}/transactions/"),  # the list, as OZ documents it
    ("GET", "/api/v1/relayers/{relayer_id}/transactions/{transaction_id}"),
    ("PUT", "/api/v1/relayers/{relayer_id}/transactions/{transaction_id}"),  # replace
    ("DELETE", "/api/v1/relayers/{relayer_id}/transactions/{transaction_id}"),  # cancel
}
EXAMPLES = 60


def _ozs_own_500(case: schemathesis.Case) -> bool:
    query = case.query or {}
    return case.path == "/api/v1/relayers" and any(
        str(query.get(name)) in ("0", "00", "+0", "-0") for name in ("page", "per_page")
    )


@pytest.fixture(scope="module")
def relayer(
    openbao: OpenBao,
    redis_server: Redis,
    chain: Chain,
    stack_logs: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LocalRelayer]:
    config_dir, env = provision_relayer(
        openbao, redis_server.url, chain, relayer_id="fuzz-1", work_dir=tmp_path_factory.mktemp("fuzz")
    )
    rel = start_relayer(config_dir, env, stack_logs, "devrelayer-fuzz-1", engine="dev")
    yield rel
    rel.stop()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_errors(relayer: LocalRelayer, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_path(OPENAPI_PATH)
    operations = [r.ok() for r in schema.get_all_operations()]  # type: ignore[union-attr]
    operations = [op for op in operations if (op.method.upper(), op.path) in SERVED]
    assert {(op.method.upper(), op.path) for op in operations} == SERVED
    answered: Counter[int] = Counter()
    known: Counter[int] = Counter()
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case: schemathesis.Case) -> None:
            if case.path_parameters and "relayer_id" in case.path_parameters:
                case.path_parameters["relayer_id"] = relayer.relayer_id
            response = case.call(base_url=relayer.url, headers=relayer.headers)

            if response.status_code == 500 and _ozs_own_500(case):
                # OZ answers page=0 / per_page=0 on the relayer list with a bare 500 and the stand-in imitates
                # it on purpose (devrelayer/api.py list_relayers): counted, not a finding.
                known[response.status_code] += 1
                return
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path} query={case.query} body={case.body!r}: "
                f"{response.status_code} {response.text[:300]}"
            )
            answered[response.status_code] += 1

        try:
            run()
        except Unsatisfiable:
            # Operations without inputs have no invalid form to generate.
            assert mode is GenerationMode.NEGATIVE
    print(
        f"{mode.value}: {sum(answered.values())} requests, by status {dict(sorted(answered.items()))}; "
        f"OZ's own page=0 500, imitated: {sum(known.values())}"
    )
    assert sum(answered.values()) >= len(operations)
    assert not [code for code in answered if code >= 500]
