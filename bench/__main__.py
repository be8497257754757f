"""`python -m bench`: every benchmark, one JSON document keyed by benchmark name (progress on stderr)."""

from __future__ import annotations

from bench import gateway_overhead, operator_timings, pool_scaling
from bench.report import emit, quiet_logs


def main() -> None:
    quiet_logs()
    emit(
        {
            "gateway_overhead": gateway_overhead.run(requests=200),
            "pool_scaling": pool_scaling.run(sizes=[1, 2, 4, 8], count=300, concurrency=48),
            "operator_timings": operator_timings.run(),
        }
    )


if __name__ == "__main__":
    main()
