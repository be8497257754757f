"""A steady operator costs the API server nothing but its watches: with its pools Ready and nothing
changing, several timer passes (pool resync every 3 s, relayer observation every 5 s) make no read and no
write, because the timers read the watches' copies (msq_operator.watch_cache).

The relayers do not run here: their endpoint annotation points at a stub that answers the `/status` and
`/readyz` calls the operator makes (msq_devstack.relayer_stub); keys, AppRoles and every rendered object
are real. A control plane of its own logs every request (audit_reads), which the session's does not."""

from __future__ import annotations

import datetime as dt
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from msq_devstack.chain import Chain
from msq_devstack.kube import KubeControlPlane, start_control_plane
from msq_devstack.openbao import OpenBao
from msq_devstack.operator import OperatorProcess
from msq_devstack.pods import ANNOTATION_ENDPOINT
from msq_devstack.redis import Redis
from msq_devstack.relayer_stub import EndpointAnnotator, RelayerStub
from msq_devstack.scenario import create_pool_secrets, pool_manifest
from tests.support.kube import GROUP, VERSION, api_client, apply_crds, condition, eventually, get_cr

FORWARDER = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
POOLS, RELAYERS = 2, 2
WINDOW_SECONDS = 12  # four pool passes, two relayer passes


@pytest.fixture(scope="module")
def audited_kube(stack_logs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeControlPlane]:
    plane = start_control_plane(tmp_path_factory.mktemp("kube-audited"), stack_logs, audit_reads=True)
    yield plane
    plane.stop()


def test_steady_pools_make_no_reads_and_no_writes(
    audited_kube: KubeControlPlane, openbao: OpenBao, redis_server: Redis, chain: Chain, stack_logs: Path
) -> None:
    apply_crds(audited_kube)
    api = api_client(audited_kube)
    ns = f"steady-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    create_pool_secrets(api, ns, openbao.root_token, redis_server.url, {"ops": secrets.token_urlsafe(32)})
    stub = RelayerStub().start()
    annotator = EndpointAnnotator(api, ns, stub.url).start()
    operator = OperatorProcess(
        audited_kube.operator_kubeconfig, stack_logs, namespaces=[ns], name=f"operator-{ns}"
    ).start()
    try:
        names = [f"steady-{i}" for i in range(POOLS)]
        for name in names:
            body = pool_manifest(
                name,
                replicas=RELAYERS,
                vault_addr=openbao.addr,
                rpc_url=chain.rpc_url,
                chain_id=chain.chain_id,
                forwarder=FORWARDER,
            )
            body["metadata"]["annotations"] = {ANNOTATION_ENDPOINT: stub.url}
            client.CustomObjectsApi(api).create_namespaced_custom_object(
                GROUP, VERSION, ns, "relayerpools", body
            )
        eventually(
            lambda: all(
                (condition(get_cr(api, ns, "relayerpools", n), "Ready") or {}).get("status") == "True"
                for n in names
            ),
            timeout=60,
            what="pools Ready",
        )
        time.sleep(6)  # each relayer's first observation writes its status (balance, Funded) once
        offset, asked, begin = audited_kube.audit_offset(), stub.counts(), dt.datetime.now(dt.UTC)
        time.sleep(WINDOW_SECONDS)
        observed = {k: v - asked.get(k, 0) for k, v in stub.counts().items()}
        window = (begin, dt.datetime.now(dt.UTC))
        time.sleep(2)  # the audit log is written in batches of up to 1 s
        requests = [
            e for e in audited_kube.audited_requests(since=offset, received=window) if e["verb"] != "watch"
        ]
    finally:
        operator.stop()
        annotator.stop()
        stub.stop()
    # The timers did run in the window: every relayer was asked at least twice, every gateway three times.
    assert observed.get("relayer_status", 0) >= 2 * POOLS * RELAYERS, observed
    assert observed.get("ready", 0) >= 3 * POOLS, observed
    assert requests == [], [
        (e["verb"], e["objectRef"].get("resource"), e["objectRef"].get("name"), e.get("userAgent"))
        for e in requests
    ]
