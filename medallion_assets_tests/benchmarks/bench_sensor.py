"""Landing sensor evaluation time with a year of landed days; prints times and ratios.

    python -m medallion_assets_tests.benchmarks.bench_sensor [--days 365]

Lands `--days` days of real flights files, then evaluates `flights_landing_sensor` against a persistent
(SQLite) Dagster instance in three states:
1. first evaluation: no cursor, nothing ingested, so every day is requested;
2. steady state: the stored cursor, nothing changed (what the daemon does every 15 s);
3. every day already ingested by a backfill: no cursor, and the sensor reads each day's latest bronze
   materialization to see that the files were ingested.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

from dagster import AssetKey, AssetMaterialization, DagsterInstance, SensorResult, build_sensor_context

from medallion_assets.definitions import partitions_of
from medallion_assets.domains.flights.landing import FLIGHTS, stage
from medallion_assets.framework.landing import folder_fingerprint
from medallion_assets.framework.partitions import PartitionWindow
from medallion_assets.orchestration.automation import landing_sensor
from medallion_assets.orchestration.compute import LocalSparkCompute

FIRST_DAY = date(2013, 1, 1)


def best_of(repeats: int, evaluate: Callable[[], SensorResult]) -> tuple[float, SensorResult]:
    timings, result = [], None
    for _ in range(repeats):
        started = time.monotonic()
        result = evaluate()
        timings.append(time.monotonic() - started)
    assert result is not None
    return min(timings), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sensor = landing_sensor("flights", [FLIGHTS], partitions_of["flights"])
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        window = PartitionWindow(FIRST_DAY, FIRST_DAY + timedelta(days=args.days))
        stage(home / "landing", window, progress=False)
        compute = LocalSparkCompute(home=str(home))
        (home / "dagster").mkdir()
        with DagsterInstance.local_temp(str(home / "dagster")) as instance:

            def evaluate(cursor: str | None = None) -> SensorResult:
                return sensor(build_sensor_context(instance=instance, cursor=cursor, resources={"compute": compute}))

            first_s, first = best_of(args.repeats, evaluate)
            assert len(first.run_requests) == args.days
            steady_s, steady = best_of(args.repeats, lambda: evaluate(first.cursor))
            assert not steady.run_requests

            for day in window.days():
                key = day.isoformat()
                fingerprint = folder_fingerprint(home / "landing/flights" / key)
                instance.report_runless_asset_event(
                    AssetMaterialization(
                        AssetKey(["bronze", "flights"]),
                        partition=key,
                        metadata={"landing_fingerprints": {key: fingerprint}},
                    )
                )
            ingested_s, ingested = best_of(args.repeats, evaluate)
            assert not ingested.run_requests

    per_day_ms = statistics.mean([first_s, steady_s]) / args.days * 1000
    print(f"flights_landing_sensor with {args.days} landed days (best of {args.repeats})")
    print(f"  first evaluation, {args.days} run requests:     {first_s * 1000:8.0f} ms")
    print(f"  steady state, nothing changed:        {steady_s * 1000:8.0f} ms")
    print(f"  all days already ingested (no cursor): {ingested_s * 1000:8.0f} ms")
    print(f"  ratio first / steady: {first_s / steady_s:.1f}x; about {per_day_ms:.2f} ms per landed day")
    print("  the daemon's default sensor timeout is 60 s")


if __name__ == "__main__":
    main()
