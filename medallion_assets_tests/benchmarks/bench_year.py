"""The full year, every table, one single-run backfill, against a plain PySpark pass over the same year.

    python -m medallion_assets_tests.benchmarks.bench_year [--days 365] [--home DIR] [--fingerprints FILE]

Both sides run as fresh processes on the same staged files, one after the other, on an otherwise idle machine:
- the plain pass (`plain_pass`): read the raw flights CSVs, write them as bronze Parquet, deduplicate and type
  them into silver Parquet, aggregate the carrier KPIs per day; no checks, no quarantine, no history;
- the project: `medallion run --no-stage` over the same days, all 16 tables with every check and quarantine.

It prints the wall time of each, their ratio, the time per table, where Dagster's bookkeeping went (run creation
before the first step, and the events recorded), and the peak memory of the Python driver, the JVM and
PySpark's Python workers.
`--fingerprints FILE` writes a content fingerprint of every table (rows, and an order-independent hash of the
columns that do not depend on when or by which run they were written), so two versions of the project can be
compared table by table on the same days.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from medallion_assets_tests.benchmarks.proc import run_measured_by_process

FIRST_DAY = date(2013, 1, 1)
# Written by a run, not received: excluded from the fingerprints.
RUN_DEPENDENT_COLUMNS = {"_ingested_at", "_run_id", "_landed_at", "_source_file", "_source", "_raw_line"}


def plain_spark_session(driver_memory: str):
    """The baselines' session: plain local Spark with no Delta and none of the project's settings."""
    from pyspark.sql import SparkSession

    return (
        SparkSession.builder.master("local[*]")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", driver_memory)
        .getOrCreate()
    )


def plain_pass(home: Path, days: int) -> None:
    """The same year's flights through bronze, silver and carrier KPIs with nothing but PySpark (Parquet)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    started = time.monotonic()
    spark = plain_spark_session("2g")
    session_s = time.monotonic() - started
    out = home / "plain"
    last = FIRST_DAY + timedelta(days=days - 1)
    folders = [str(home / "landing" / "flights" / (FIRST_DAY + timedelta(days=d)).isoformat()) for d in range(days)]
    raw = spark.read.option("header", "true").csv(folders).withColumn("_source_file", F.input_file_name())
    bronze = raw.withColumn("partition_date", F.to_date(F.regexp_extract("_source_file", r"(\d{4}-\d{2}-\d{2})", 1)))
    bronze.write.mode("overwrite").partitionBy("partition_date").parquet(str(out / "bronze_flights"))
    landed = spark.read.parquet(str(out / "bronze_flights"))
    typed = landed.select(
        F.to_date(
            F.format_string(
                "%04d-%02d-%02d",
                F.col("year").try_cast("int"),
                F.col("month").try_cast("int"),
                F.col("day").try_cast("int"),
            )
        ).alias("flight_date"),
        F.upper(F.trim("carrier")).alias("carrier"),
        F.col("flight").try_cast("int").alias("flight"),
        F.upper(F.trim("origin")).alias("origin"),
        F.upper(F.trim("dest")).alias("dest"),
        F.col("dep_delay").try_cast("int").alias("dep_delay"),
        F.col("arr_delay").try_cast("int").alias("arr_delay"),
        F.col("dep_time").isNull().alias("is_cancelled"),
        "partition_date",
    )
    newest = Window.partitionBy("flight_date", "carrier", "flight", "origin").orderBy(F.col("partition_date").desc())
    silver = typed.withColumn("_n", F.row_number().over(newest)).where("_n = 1").drop("_n")
    silver.write.mode("overwrite").partitionBy("partition_date").parquet(str(out / "silver_flights"))
    kpis = (
        spark.read.parquet(str(out / "silver_flights"))
        .groupBy("flight_date", "carrier")
        .agg(
            F.count(F.lit(1)).alias("scheduled_flights"),
            F.count_if("is_cancelled").alias("cancelled_flights"),
            F.avg("arr_delay").alias("avg_arr_delay_min"),
            F.count_if(F.col("arr_delay") < 15).alias("on_time_flights"),
        )
    )
    kpis.write.mode("overwrite").parquet(str(out / "carrier_kpis"))
    rows = spark.read.parquet(str(out / "carrier_kpis")).count()
    print(
        json.dumps(
            {
                "session_s": session_s,
                "work_s": time.monotonic() - started - session_s,
                "kpi_rows": rows,
                "last_day": last.isoformat(),
            }
        )
    )


def per_table_seconds(output: str) -> dict[str, float]:
    found = {}
    for line in output.splitlines():
        match = re.match(r"✓ (\S+) .* in ([\d.]+) s$", line)
        if match:
            found[match.group(1)] = float(match.group(2))
    return found


def bookkeeping(dagster_home: Path) -> dict[str, float | int]:
    """Where the run's time went on Dagster's side, from the instance the run wrote."""
    from dagster import DagsterEventType, DagsterInstance

    os.environ["DAGSTER_HOME"] = str(dagster_home)
    with DagsterInstance.get() as instance:
        run = instance.get_runs(limit=1)[0]
        records = instance.all_logs(run.run_id)
        stats = instance.get_run_stats(run.run_id)
    first_step = min(r.timestamp for r in records if r.dagster_event_type == DagsterEventType.STEP_START)
    counted: dict[str, int] = {}
    for record in records:
        if record.dagster_event_type is not None:
            counted[record.dagster_event_type.value] = counted.get(record.dagster_event_type.value, 0) + 1
    planned = [r.timestamp for r in records if r.dagster_event_type == DagsterEventType.ASSET_MATERIALIZATION_PLANNED]
    return {
        "events": len(records),
        "planned_events": counted.get("ASSET_MATERIALIZATION_PLANNED", 0),
        "materialization_events": counted.get("ASSET_MATERIALIZATION", 0),
        "check_evaluation_events": counted.get("ASSET_CHECK_EVALUATION", 0),
        "planning_s": round(first_step - min(planned), 1) if planned else 0.0,
        "run_s": round((stats.end_time or 0) - (stats.start_time or 0), 1),
    }


def fingerprints(home: Path) -> dict[str, dict[str, object]]:
    from pyspark.sql import functions as F

    from medallion_assets.embedded.spark import local_spark_session

    spark = local_spark_session()
    found = {}
    for table in sorted((home / "warehouse").glob("*/*")):
        frame = spark.read.format("delta").load(str(table))
        columns = sorted(c for c in frame.columns if c not in RUN_DEPENDENT_COLUMNS)
        row = frame.agg(
            F.count(F.lit(1)).alias("rows"), F.sum(F.xxhash64(*columns).cast("decimal(38,0)")).alias("hash")
        ).first()
        found[f"{table.parent.name}/{table.name}"] = {"rows": row["rows"], "hash": str(row["hash"])}
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--home", type=Path, help="a lakehouse folder to stage into and build (default: a temp dir)")
    parser.add_argument("--fingerprints", type=Path, help="write each table's content fingerprint here (JSON)")
    parser.add_argument("--plain-pass", nargs=2, metavar=("HOME", "DAYS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_pass:
        plain_pass(Path(args.plain_pass[0]), int(args.plain_pass[1]))
        return

    from medallion_assets.domains.flights.landing import stage
    from medallion_assets.framework.partitions import PartitionWindow

    with tempfile.TemporaryDirectory() as scratch:
        home = (args.home or Path(scratch) / "lakehouse").resolve()
        stage(home / "landing", PartitionWindow(FIRST_DAY, FIRST_DAY + timedelta(days=args.days)), progress=False)
        started = time.monotonic()
        plain = subprocess.run(
            [sys.executable, "-m", __spec__.name, "--plain-pass", str(home), str(args.days)],
            capture_output=True,
            text=True,
            check=True,
        )
        plain_wall = time.monotonic() - started
        plain_work = json.loads(plain.stdout.strip().splitlines()[-1])

        env = {**os.environ, "MEDALLION_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
        medallion = Path(sys.executable).with_name("medallion")
        log = home / "bench_year_run.log"
        command = [
            str(medallion),
            "run",
            "--no-stage",
            "--quiet",
            "--start",
            FIRST_DAY.isoformat(),
            "--days",
            str(args.days),
        ]
        wall, peaks, code = run_measured_by_process(command, env=env, output=log)
        output = log.read_text()
        if code != 0:
            sys.exit(f"medallion run failed ({code}):\n{output[-3000:]}")
        tables = per_table_seconds(output)
        kept = bookkeeping(home / "dagster")
        if args.fingerprints:
            args.fingerprints.write_text(json.dumps(fingerprints(home), indent=2, sort_keys=True) + "\n")

    print(f"{args.days} days, every table, one single-run backfill, on {os.cpu_count()} cores")
    print(
        f"  plain PySpark pass (process): {plain_wall:7.1f} s  (work {plain_work['work_s']:.1f} s, "
        f"session start {plain_work['session_s']:.1f} s)"
    )
    print(f"  medallion run (process):      {wall:7.1f} s")
    print(f"  ratio medallion / plain:      {wall / plain_wall:7.2f}x")
    print(
        f"  tables: {sum(tables.values()):.1f} s in steps; Dagster run {kept['run_s']} s, "
        f"{kept['planning_s']} s from the first planned event to the first step"
    )
    print(
        f"  events recorded: {kept['events']:,} ({kept['planned_events']:,} planned, "
        f"{kept['materialization_events']:,} materializations, {kept['check_evaluation_events']:,} check evaluations)"
    )
    print(
        f"  peak memory: Python driver {peaks.get('driver', 0) / 2**20:,.0f} MiB,"
        f" JVM {peaks.get('java', 0) / 2**20:,.0f} MiB,"
        f" PySpark's Python workers {peaks.get('workers', 0) / 2**20:,.0f} MiB"
    )
    for table, seconds in tables.items():
        print(f"    {table:36s} {seconds:7.1f} s")


if __name__ == "__main__":
    main()
