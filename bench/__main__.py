"""`python -m bench`: every benchmark, one JSON document keyed by benchmark name (progress on stderr)."""

from __future__ import annotations

from bench import gateway_cost, gateway_overhead, http_clients, operator_scale, operator_timings, pool_scaling
from bench.report import emit, quiet_logs
from msq_devstack import engine


def main() -> None:
    quiet_logs()
    emit(
        {
            "gateway_cost": gateway_cost.run(),
            "http_clients": http_clients.run(requests=4000, concurrency=32, rounds=3),
            "gateway_overhead": gateway_overhead.run(requests=200),
            "pool_scaling": pool_scaling.run(sizes=[1, 2, 4, 8], count=600, concurrency=48),
            # The real engine costs ~100x the stand-in's CPU per transaction: fewer, on 1 and 3 relayers.
            "pool_scaling_oz": pool_scaling.run(sizes=[1, 3], count=30, concurrency=6, engine="oz")
            if engine.oz_binary()
            else {"skipped": engine.HOW_TO_ENABLE},
            "operator_timings": operator_timings.run(),
            # The full 100 x 10 takes about 10 minutes here: a smaller run (bench/README.md has the full one).
            "operator_scale": operator_scale.run(pools=20, relayers=5, baseline_pools=5, steady_seconds=30),
        }
    )


if __name__ == "__main__":
    main()
