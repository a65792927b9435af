"""The Databricks launch path against the local emulator: API calls per launch and round-trip time.

    python -m medallion_assets_tests.benchmarks.bench_databricks

Launches gold/dim_date (the cheapest task) a few times through DatabricksCompute and prints the REST
calls one partition launch makes, by endpoint, and the round trip: Dagster's wall time for the step
against the remote task's own build time (`duration_s`).
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path

from dagster import AssetKey, materialize

from medallion_assets.definitions import table_assets
from medallion_assets.domains.flights.landing import stage
from medallion_assets.framework.partitions import PartitionWindow
from medallion_assets.jobs import partition_range_tags
from medallion_assets.resources.databricks import DatabricksCompute
from medallion_assets_tests.databricks_emulator import DatabricksEmulator
from medallion_assets_tests.support import materialization_metadata

REPO = Path(__file__).resolve().parents[2]
TOKEN = "dapi-benchmark"


def main(launches: int = 3) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        landing = root / "Volumes/main/landing/files"
        stage(landing, PartitionWindow.single_day(date(2013, 1, 1)), progress=False)
        task_env = {"MEDALLION_SHUFFLE_PARTITIONS": "2", "MEDALLION_SPARK_MASTER": "local[2]"}
        with DatabricksEmulator(root, token=TOKEN, task_env=task_env) as emulator:
            volume = str(root / "Volumes/main/dagster/pipes")
            emulator.deploy_bundle(
                REPO / "databricks.yml",
                "dev",
                {"landing_volume": str(landing), "pipes_volume": volume, "table_root": str(root / "external")},
            )
            compute = DatabricksCompute(host=emulator.host, token=TOKEN, pipes_volume=volume, poll_interval_seconds=1)
            rounds, remote = [], []
            calls = Counter()
            for _ in range(launches):
                before = Counter(emulator.calls)
                started = time.monotonic()
                result = materialize(
                    table_assets,
                    resources={"compute": compute},
                    selection=[AssetKey(["gold", "dim_date"])],
                    tags=partition_range_tags(PartitionWindow.single_day(date(2013, 1, 1))),
                )
                rounds.append(time.monotonic() - started)
                remote.append(materialization_metadata(result, "gold", "dim_date")["duration_s"])
                calls += Counter(emulator.calls) - before
    per_launch = {endpoint: count / launches for endpoint, count in sorted(calls.items())}
    print(f"REST calls per partition launch: {sum(per_launch.values()):.1f} (poll interval 1 s)")
    for endpoint, count in per_launch.items():
        print(f"  {endpoint}: {count:.1f}")
    best = min(range(launches), key=lambda i: rounds[i])
    print(f"round trip (Dagster step wall time), best of {launches}: {rounds[best]:.1f} s")
    print(f"remote build time of that launch (duration_s): {remote[best]:.1f} s")
    print(
        f"launch overhead (JVM start, Pipes, polling): {rounds[best] - remote[best]:.1f} s "
        f"= {rounds[best] / remote[best]:.1f}x the build itself"
    )


if __name__ == "__main__":
    main()
