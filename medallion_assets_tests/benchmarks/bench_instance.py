"""What a range run's bookkeeping costs in the local instance's storage, against Dagster's own SQLite storage.

    python -m medallion_assets_tests.benchmarks.bench_instance [--days 365] [--checks 3] [--rounds 3]

One partitioned asset with `--checks` blocking checks, materialized in one single-run backfill of `--days` days
that does no work of its own: the run records what a table of the year records (a planned and a done
materialization per day, a planned row and an evaluation per check and day, filed as the asset factory files
them). Each round runs it once against a fresh instance of each storage, in alternating order; the medians are
printed with their ratio. No Spark: this is Dagster's part of a year's run, per table.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetsDefinition,
    BackfillPolicy,
    DagsterInstance,
    DailyPartitionsDefinition,
    MaterializeResult,
    asset,
    materialize,
)

from medallion_assets.framework.partitions import PartitionWindow
from medallion_assets.orchestration.asset_factory import checks_per_day
from medallion_assets.orchestration.instance import prepare_dagster_home
from medallion_assets.orchestration.jobs import partition_range_tags

FIRST_DAY = date(2013, 1, 1)


def judged_table(days: int, checks: int) -> AssetsDefinition:
    partitions = DailyPartitionsDefinition(
        start_date=FIRST_DAY.isoformat(), end_date=(FIRST_DAY + timedelta(days=days)).isoformat()
    )
    names = [f"check_{i}" for i in range(checks)]

    @asset(
        name="table",
        partitions_def=partitions,
        backfill_policy=BackfillPolicy.single_run(),
        check_specs=[AssetCheckSpec(name, asset="table", blocking=True, partitions_def=partitions) for name in names],
    )
    def table(context) -> Iterator[object]:
        window = context.partition_time_window
        result = MaterializeResult(
            metadata={"rows_out": 1000},
            check_results=[AssetCheckResult(check_name=name, passed=True, metadata={"rows": 1000}) for name in names],
        )
        yield result
        yield from checks_per_day(context, result, PartitionWindow(window.start.date(), window.end.date()))

    return table


def one_run(instance: DagsterInstance, table: AssetsDefinition, window: PartitionWindow) -> float:
    started = time.monotonic()
    # Dagster's console logger at WARNING, as `medallion run` keeps the event stream out of the console.
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    result = materialize([table], instance=instance, tags=partition_range_tags(window), run_config=quiet)
    elapsed = time.monotonic() - started
    assert result.success
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--checks", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    table = judged_table(args.days, args.checks)
    window = PartitionWindow(FIRST_DAY, FIRST_DAY + timedelta(days=args.days))
    timings: dict[str, list[float]] = {"ours": [], "dagster": []}
    with tempfile.TemporaryDirectory(prefix="medallion-instance-") as scratch:
        for round_number in range(args.rounds):
            order = ["ours", "dagster"] if round_number % 2 == 0 else ["dagster", "ours"]
            for storage in order:
                home = Path(scratch) / f"{storage}-{round_number}"
                home.mkdir()
                if storage == "ours":
                    prepare_dagster_home(home)
                with DagsterInstance.from_config(str(home)) as instance:
                    timings[storage].append(one_run(instance, table, window))

    events = args.days * (2 + args.checks)
    ours, dagsters = (statistics.median(timings[name]) for name in ("ours", "dagster"))
    planned_rows = args.days * args.checks
    print(f"one table, {args.days} days, {args.checks} checks: {events:,} events, {planned_rows:,} planned check rows")
    print(f"  Dagster's SQLite storage:  {dagsters:6.2f} s  (median of {args.rounds})")
    print(f"  the local instance's:      {ours:6.2f} s")
    print(f"  ratio ours / Dagster's:    {ours / dagsters:6.2f}x")


if __name__ == "__main__":
    main()
