"""A single-run backfill against one run per partition, on the embedded default; prints wall times and the ratio.

    python -m medallion_assets_tests.benchmarks.bench_backfill [--days 30]

Both sides materialize every table for the same real days in fresh lakehouses and in the same Python
process, so the JVM is already warm for both: the ratio is what single-run saves inside Spark and Delta
(one job set and one commit per table instead of one per day). Separate run processes, as Dagster's run
launcher starts them, would add a JVM start per run on top, which is measured and printed separately.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

FIRST_DAY = date(2013, 1, 1)
START_SPARK = "from medallion_assets.embedded.spark import local_spark_session; local_spark_session().range(1).count()"


def time_single_run(home: Path, days: int) -> float:
    from medallion_assets_tests.support import materialize_window

    last = (FIRST_DAY + timedelta(days=days - 1)).isoformat()
    started = time.monotonic()
    assert materialize_window(home, FIRST_DAY.isoformat(), last).result.success
    return time.monotonic() - started


def time_run_per_partition(home: Path, days: int) -> float:
    from medallion_assets_tests.support import materialize_window

    started = time.monotonic()
    for offset in range(days):
        day = (FIRST_DAY + timedelta(days=offset)).isoformat()
        assert materialize_window(home, day, day).result.success
    return time.monotonic() - started


def time_jvm_start() -> float:
    """A fresh process that starts the local Spark session, as every separately launched run does."""
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-c", START_SPARK],
        check=True,
        capture_output=True,
    )
    return time.monotonic() - started


def rows_per_table(home: Path) -> dict[str, int]:
    from medallion_assets.embedded.spark import local_spark_session

    spark = local_spark_session()
    return {
        f"{table.parent.name}/{table.name}": spark.read.format("delta").load(str(table)).count()
        for table in sorted((home / "warehouse").glob("*/*"))
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()

    from medallion_assets.domains.flights.landing import stage
    from medallion_assets.framework.partitions import PartitionWindow

    with tempfile.TemporaryDirectory() as scratch:
        single, per_day = Path(scratch, "single"), Path(scratch, "per_day")
        window = PartitionWindow(FIRST_DAY, FIRST_DAY + timedelta(days=args.days))
        for home in (single, per_day):
            stage(home / "landing", window, progress=False)
        jvm_start = time_jvm_start()
        single_s = time_single_run(single, args.days)
        per_day_s = time_run_per_partition(per_day, args.days)
        same = rows_per_table(single) == rows_per_table(per_day)

    print(f"{args.days}-day backfill of every table, embedded default (warm JVM for both)")
    print(f"  single run over the range: {single_s:8.1f} s")
    print(f"  {args.days} single-partition runs:  {per_day_s:8.1f} s")
    print(f"  ratio per-partition / single-run: {per_day_s / single_s:.1f}x")
    print(f"  + a JVM start per separately launched run: {jvm_start:.1f} s each, {jvm_start * args.days:.0f} s for all")
    print(f"  identical row counts in every table: {same}")


if __name__ == "__main__":
    main()
