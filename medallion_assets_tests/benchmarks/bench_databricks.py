"""The Databricks launch path against the local emulator: API calls per launch and round-trip time.

    python -m medallion_assets_tests.benchmarks.bench_databricks

Launches gold/dim_date (the cheapest task) a few times through DatabricksCompute, on one Dagster instance
so that later launches know how long the last one took, and prints the REST calls one partition launch
makes, by endpoint, and the round trip: Dagster's wall time for the step against the remote task's own
build time (`duration_s`). The first launch has no earlier run to go by; it is reported apart.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path

from dagster import AssetKey, DagsterInstance, materialize

from medallion_assets.definitions import table_assets
from medallion_assets.domains.flights.landing import stage
from medallion_assets.framework.partitions import PartitionWindow
from medallion_assets.orchestration.databricks import DatabricksCompute
from medallion_assets.orchestration.jobs import partition_range_tags
from medallion_assets_tests.databricks_emulator import DatabricksEmulator
from medallion_assets_tests.support import materialization_metadata

REPO = Path(__file__).resolve().parents[2]
TOKEN = "dapi-benchmark"


def main(launches: int = 4) -> None:
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
            compute = DatabricksCompute(host=emulator.host, token=TOKEN, pipes_volume=volume)
            rounds, remote, calls = [], [], []
            with DagsterInstance.ephemeral() as instance:
                for _ in range(launches):
                    before = Counter(emulator.calls)
                    started = time.monotonic()
                    result = materialize(
                        table_assets,
                        resources={"compute": compute},
                        selection=[AssetKey(["gold", "dim_date"])],
                        tags=partition_range_tags(PartitionWindow.single_day(date(2013, 1, 1))),
                        instance=instance,
                    )
                    rounds.append(time.monotonic() - started)
                    remote.append(materialization_metadata(result, "gold", "dim_date")["duration_s"])
                    calls.append(Counter(emulator.calls) - before)
    # The first launch also starts the emulated cluster's driver, which a warm cluster would not.
    print(
        f"first launch (no earlier run to go by, cold driver): {sum(calls[0].values())} REST calls, "
        f"round trip {rounds[0]:.1f} s for a {remote[0]:.1f} s build"
    )
    later = range(1, launches)
    per_launch = {e: sum(calls[i][e] for i in later) / len(later) for e in sorted(set().union(*calls[1:]))}
    print(
        f"later launches: {sum(per_launch.values()):.1f} REST calls each (poll interval at most "
        f"{compute.poll_interval_seconds:.0f} s)"
    )
    for endpoint, count in per_launch.items():
        print(f"  {endpoint}: {count:.1f}")
    overheads = sorted(rounds[i] - remote[i] for i in later)
    median = overheads[len(overheads) // 2]
    print(
        f"Dagster step wall time minus the remote build (duration_s), median of {len(overheads)}: {median:.1f} s "
        f"(builds {min(remote[1:]):.1f}-{max(remote[1:]):.1f} s; ratio {median / (sum(remote[1:]) / len(later)):.2f})"
    )


if __name__ == "__main__":
    main()
