"""`msq-operator run`: the operator against the current kubeconfig (or in-cluster config)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

import kopf
from prometheus_client import start_http_server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="msq-operator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the operator")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="watch only this namespace (repeatable; glob patterns allowed)",
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace (default)")
    run.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, then $KUBECONFIG)")
    run.add_argument(
        "--metrics-port",
        type=int,
        default=int(os.environ.get("MSQ_METRICS_PORT", "9090")),
        help="Prometheus metrics on this port (0 disables)",
    )
    run.add_argument(
        "--liveness-port",
        type=int,
        default=int(os.environ.get("MSQ_LIVENESS_PORT", "8080")),
        help="liveness probe at http://0.0.0.0:PORT/healthz (0 disables)",
    )
    run.add_argument(
        "--bind",
        default=os.environ.get("MSQ_BIND_ADDRESS", "0.0.0.0"),
        help="address for the metrics and liveness listeners",
    )
    run.add_argument(
        "--leader-elect",
        action="store_true",
        default=os.environ.get("MSQ_LEADER_ELECT", "") == "true",
        help="act only while holding a Lease, so that several replicas can run (one acts, the others wait)",
    )
    run.add_argument(
        "--leader-elect-namespace",
        default=os.environ.get("POD_NAMESPACE", "default"),
        help="namespace of the Lease (default: $POD_NAMESPACE)",
    )
    run.add_argument("--leader-elect-lease", default="msq-relayer-operator", help="name of the Lease")
    run.add_argument(
        "--leader-elect-seconds",
        type=int,
        default=int(os.environ.get("MSQ_LEASE_SECONDS", "15")),
        help="Lease duration: a standby takes over this long after the leader stopped renewing",
    )
    run.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    if args.kubeconfig:
        import kubernetes.config.kube_config

        os.environ["KUBECONFIG"] = args.kubeconfig
        # The client computes its default path at import time; Kopf's login uses that default.
        kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION = args.kubeconfig
    if args.metrics_port:
        start_http_server(args.metrics_port, addr=args.bind)

    if args.leader_elect:
        from msq_operator.leader import Election, default_identity, standby_liveness, wait_for_leadership

        election = Election(
            lease=args.leader_elect_lease,
            namespace=args.leader_elect_namespace,
            identity=default_identity(),
            lease_seconds=args.leader_elect_seconds,
        )
        with standby_liveness(args.bind, args.liveness_port):
            wait_for_leadership(election, args.kubeconfig)

    import msq_operator.handlers  # noqa: F401 - registers the handlers

    liveness = f"http://{args.bind}:{args.liveness_port}/healthz" if args.liveness_port else None
    kopf.run(
        standalone=True,
        namespaces=args.namespace or None,
        clusterwide=not args.namespace,
        liveness_endpoint=liveness,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
