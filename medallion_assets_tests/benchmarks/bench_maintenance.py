"""What Delta maintenance buys a year-long table; prints figures and ratios.

    python -m medallion_assets_tests.benchmarks.bench_maintenance [--days 365] [--reruns 30]

Builds silver/flights for `--days` days in one range build, as a backfill would, then re-runs each of the last
`--reruns` days on its own, as late data does. That leaves every replaced file on storage. It then measures, before
and after the table's maintenance (OPTIMIZE Z-ordered on the declared columns, then VACUUM):

- files on storage, and files the current version reads;
- the time to read one day for one carrier, and the whole year by carrier (median of `--repeats`);
- the next weekly pass after seven days are re-run, against the first pass.

The declared VACUUM keeps seven days, so on a table built minutes ago it deletes nothing. To show what the weekly
pass deletes once the replaced files have aged past the retention, the benchmark then vacuums with no retention,
in its own session only (`retentionDurationCheck` off); the framework never does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

FIRST_DAY = date(2013, 1, 1)


def median_seconds(action: Callable[[], Any], repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        started = time.monotonic()
        action()
        timings.append(time.monotonic() - started)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--reruns", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("MEDALLION_SHUFFLE_PARTITIONS", "2")

    from medallion_assets.domains import CATALOG
    from medallion_assets.domains.flights.landing import stage
    from medallion_assets.embedded.spark import local_spark_session, tune_for_window
    from medallion_assets.framework.delta_io import sql_name
    from medallion_assets.framework.execution import run_table
    from medallion_assets.framework.lakehouse import PathLakehouse
    from medallion_assets.framework.maintenance import maintain_table
    from medallion_assets.framework.partitions import PartitionWindow
    from medallion_assets.framework.table import TableKey

    spark = local_spark_session()
    table = CATALOG[TableKey("silver", "flights")]
    year = PartitionWindow(FIRST_DAY, FIRST_DAY + timedelta(days=args.days))
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        lakehouse = PathLakehouse(str(home))
        location = lakehouse.table(table.key)
        stage(home / "landing", year, progress=False)

        def build(key: TableKey, window: PartitionWindow) -> None:
            tune_for_window(spark, window.day_count)
            report = run_table(spark, lakehouse, CATALOG[key], CATALOG, window, run_id="bench")
            assert report.committed, report.blocked_error()

        started = time.monotonic()
        for key in (TableKey("bronze", "flights"), TableKey("bronze", "airports"), TableKey("silver", "airports")):
            build(key, year)
        build(table.key, year)
        for offset in range(args.reruns):
            build(table.key, PartitionWindow.single_day(year.last_day - timedelta(days=offset)))
        print(f"built silver/flights over {args.days} days, re-ran {args.reruns}: {time.monotonic() - started:.1f} s")

        day, carrier = year.last_day - timedelta(days=args.days // 2), "UA"

        def read_day() -> None:
            frame = spark.read.format("delta").load(location.identifier)
            frame.where(f"partition_date = DATE'{day}' AND carrier = '{carrier}'").collect()

        def read_year() -> None:
            spark.read.format("delta").load(location.identifier).groupBy("carrier").count().collect()

        def measure(label: str) -> dict[str, float]:
            detail = spark.sql(f"DESCRIBE DETAIL {sql_name(location)}").first()
            figures = {
                "files on storage": float(len(list(Path(location.identifier).rglob("*.parquet")))),
                "files read by the current version": float(detail["numFiles"]),
                "read one day, one carrier (s)": median_seconds(read_day, args.repeats),
                "read the year by carrier (s)": median_seconds(read_year, args.repeats),
            }
            print(f"{label}: " + "; ".join(f"{name} {value:g}" for name, value in figures.items()), flush=True)
            return figures

        before = measure("before maintenance")
        started = time.monotonic()
        report = maintain_table(spark, lakehouse, table)
        first_s = time.monotonic() - started
        print(f"first maintenance pass: {first_s:.1f} s; {report.metadata}")
        declared = measure("after OPTIMIZE and the declared VACUUM (7 days)")
        spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
        spark.sql(f"VACUUM {sql_name(location)} RETAIN 0 HOURS").collect()
        aged = measure("after VACUUM once the replaced files have aged")
        # A week later: seven days re-run, then the weekly pass Z-orders only those.
        for offset in range(7):
            build(table.key, PartitionWindow.single_day(year.last_day - timedelta(days=offset)))
        started = time.monotonic()
        weekly = maintain_table(spark, lakehouse, table).metadata
        weekly_s = time.monotonic() - started
        print(
            f"next weekly pass, 7 days re-run: {weekly_s:.1f} s, {weekly['flights/days_optimized']} days Z-ordered, "
            f"{weekly['flights/files_rewritten']} files rewritten; {weekly_s / first_s:.2f} of the first pass"
        )
        print("ratios after / before:")
        for name in before:
            print(
                f"  {name}: declared retention {declared[name] / before[name]:.2f}, "
                f"aged files {aged[name] / before[name]:.2f}"
            )


if __name__ == "__main__":
    main()
