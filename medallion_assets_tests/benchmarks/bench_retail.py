"""The retail domain at scale: TPC-H days staged, every retail table in one single-run backfill, against the same
transforms as a plain PySpark script and as DuckDB SQL.

    python -m medallion_assets_tests.benchmarks.bench_retail [--scale 1] [--days 30] [--start 1995-01-01]

Each side runs as a fresh process on the same landed files, one after the other:
- the project: `medallion run --domain retail --no-stage`, every table with every check, quarantine and history;
- the plain pass (`plain_pass`): read the landed CSVs, write bronze Parquet, type and deduplicate into silver
  Parquet, join the sales facts and aggregate the three KPI tables; no checks, no quarantine, no SCD2 history;
- DuckDB: the same KPIs in one SQL script over the landed CSVs.

It prints rows per layer, wall times and their ratios, the time per table and the peak memory of the Python
driver, the JVM and PySpark's Python workers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

from medallion_assets_tests.benchmarks.bench_year import per_table_seconds, plain_spark_session
from medallion_assets_tests.benchmarks.proc import run_measured_by_process

PLAIN_DRIVER_MEMORY = "4g"
# Per landed source, what the plain pass deduplicates on (with the day) and the columns it types.
PLAIN_SILVER = {
    "orders": (
        ["o_orderkey", "o_custkey"],
        {"o_orderkey": "BIGINT", "o_custkey": "BIGINT", "o_totalprice": "DECIMAL(15,2)", "o_orderdate": "DATE"},
    ),
    "lineitem": (
        ["l_orderkey", "l_linenumber"],
        {
            "l_orderkey": "BIGINT",
            "l_linenumber": "INT",
            "l_suppkey": "BIGINT",
            "l_quantity": "DECIMAL(15,2)",
            "l_extendedprice": "DECIMAL(15,2)",
            "l_discount": "DECIMAL(15,2)",
            "l_tax": "DECIMAL(15,2)",
            "l_commitdate": "DATE",
            "l_receiptdate": "DATE",
        },
    ),
    "customer": (["c_custkey"], {"c_custkey": "BIGINT", "c_nationkey": "INT", "c_acctbal": "DECIMAL(15,2)"}),
    "supplier": (["s_suppkey"], {"s_suppkey": "BIGINT", "s_nationkey": "INT", "s_acctbal": "DECIMAL(15,2)"}),
    "part": (["p_partkey"], {"p_partkey": "BIGINT", "p_size": "INT", "p_retailprice": "DECIMAL(15,2)"}),
    "partsupp": (
        ["ps_partkey", "ps_suppkey"],
        {"ps_partkey": "BIGINT", "ps_suppkey": "BIGINT", "ps_availqty": "INT", "ps_supplycost": "DECIMAL(15,2)"},
    ),
    "nation": (["n_nationkey"], {"n_nationkey": "INT", "n_regionkey": "INT"}),
    "region": (["r_regionkey"], {"r_regionkey": "INT"}),
}
DAY_IN_PATH = r"(\d{4}-\d{2}-\d{2})"
REVENUE = "CAST(l_extendedprice * (1 - l_discount) AS DECIMAL(18,4))"
KPI_SQL = {
    "daily_revenue": f"""SELECT o_orderdate, n_name, r_name, c_mktsegment, count(DISTINCT o_orderkey) AS orders,
        count(*) AS lines, sum({REVENUE}) AS revenue,
        sum(CASE WHEN s_nationkey = c_nationkey THEN {REVENUE} ELSE 0 END) AS local_supplier_revenue,
        sum(CASE WHEN l_returnflag = 'R' THEN {REVENUE} ELSE 0 END) AS returned_revenue
        FROM sales GROUP BY 1, 2, 3, 4""",
    "daily_pricing_summary": f"""SELECT o_orderdate, l_returnflag, l_linestatus, sum(l_quantity) AS sum_qty,
        sum(l_extendedprice) AS sum_base_price, sum({REVENUE}) AS sum_disc_price,
        sum({REVENUE} * (1 + l_tax)) AS sum_charge, avg(l_quantity) AS avg_qty, avg(l_extendedprice) AS avg_price,
        avg(l_discount) AS avg_disc, count(*) AS count_order FROM sales GROUP BY 1, 2, 3""",
    "daily_shipping_priority": f"""SELECT o_orderdate, o_orderpriority, o_shippriority,
        count(DISTINCT o_orderkey) AS orders,
        count(DISTINCT CASE WHEN l_receiptdate > l_commitdate THEN o_orderkey END) AS late_orders,
        count(*) AS lines, sum(CASE WHEN l_receiptdate > l_commitdate THEN 1 ELSE 0 END) AS late_lines,
        sum({REVENUE}) AS revenue FROM sales GROUP BY 1, 2, 3""",
}
# Nation and region are static reference files (no day): they join on their keys alone.
SALES_SQL = """SELECT lineitem.*, o_orderkey, o_orderdate, o_orderpriority, o_shippriority, c_nationkey,
    c_mktsegment, n_name, r_name, s_nationkey
    FROM lineitem JOIN orders ON l_orderkey = o_orderkey AND lineitem.day = orders.day
    JOIN customer ON o_custkey = c_custkey AND customer.day = orders.day
    JOIN nation ON c_nationkey = n_nationkey
    JOIN region ON n_regionkey = r_regionkey
    JOIN supplier ON l_suppkey = s_suppkey AND supplier.day = orders.day"""


def _folders(home: Path, source: str, start: date, days: int) -> list[str]:
    """The folders the source's files land in for the window: one per day, or the one folder of a static source."""
    from medallion_assets.domains.retail import LANDING_SOURCES

    landing = next(s for s in LANDING_SOURCES if s.name == source)
    return sorted({str(home / "landing" / landing.folder(start + timedelta(days=d))) for d in range(days)})


def plain_pass(home: Path, start: date, days: int) -> dict[str, float]:
    """Landed CSV to bronze Parquet, typed and deduplicated silver Parquet, sales facts and KPIs: PySpark alone."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    started = time.monotonic()
    spark = plain_spark_session(PLAIN_DRIVER_MEMORY)
    session_s = time.monotonic() - started
    out = home / "plain"
    for source, (key, types) in PLAIN_SILVER.items():
        raw = spark.read.option("header", "true").csv(_folders(home, source, start, days))
        # The day folder's name, by string functions rather than a regular expression over the whole path
        # (which costs about 1 s per 240,000 lines, as it did in the project's bronze); null for a static file.
        day = F.try_to_date(F.substring_index(F.substring_index(F.input_file_name(), "/", -2), "/", 1))
        raw.withColumn("day", day).write.mode("overwrite").parquet(str(out / "bronze" / source))
        landed = spark.read.parquet(str(out / "bronze" / source))
        typed = landed.select(
            *[
                F.expr(f"try_cast(trim(`{c}`) AS {types[c]})").alias(c) if c in types else F.col(c)
                for c in landed.columns
            ]
        )
        newest = Window.partitionBy(*key, "day").orderBy(F.lit(1))
        deduplicated = typed.withColumn("_n", F.row_number().over(newest)).where("_n = 1").drop("_n")
        deduplicated.write.mode("overwrite").parquet(str(out / "silver" / source))
        spark.read.parquet(str(out / "silver" / source)).createOrReplaceTempView(source)
    spark.sql(SALES_SQL).write.mode("overwrite").parquet(str(out / "gold" / "fact_sales"))
    spark.read.parquet(str(out / "gold" / "fact_sales")).createOrReplaceTempView("sales")
    rows = 0
    for name, sql in KPI_SQL.items():
        spark.sql(sql).write.mode("overwrite").parquet(str(out / "gold" / name))
        rows += spark.read.parquet(str(out / "gold" / name)).count()
    return {"session_s": session_s, "work_s": time.monotonic() - started - session_s, "kpi_rows": rows}


def duckdb_pass(home: Path, start: date, days: int) -> float:
    import duckdb

    started = time.monotonic()
    connection = duckdb.connect()
    for source, (_, types) in PLAIN_SILVER.items():
        files = [f"{folder}/{source}.csv" for folder in _folders(home, source, start, days)]
        connection.execute(
            f"CREATE TABLE {source} AS SELECT *, TRY_CAST(regexp_extract(filename, '{DAY_IN_PATH}', 1) AS DATE) AS day"
            f" FROM read_csv({files!r}, header = true, filename = true, types = {types!r})"
        )
    connection.execute(f"CREATE TABLE sales AS {SALES_SQL}")
    for name, sql in KPI_SQL.items():
        connection.execute(f"CREATE TABLE {name} AS {sql}")
    return time.monotonic() - started


def rows_per_layer(home: Path) -> Counter[str]:
    from medallion_assets.embedded.spark import local_spark_session

    spark = local_spark_session()
    counted: Counter[str] = Counter()
    for table in sorted((home / "warehouse").glob("*/*")):
        counted[table.parent.name] += spark.read.format("delta").load(str(table)).count()
    return counted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--start", type=date.fromisoformat, default=date(1995, 1, 1))
    parser.add_argument("--home", type=Path, help="a lakehouse folder to stage into and build (default: a temp dir)")
    parser.add_argument("--plain-pass", metavar="HOME", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_pass:
        print(json.dumps(plain_pass(Path(args.plain_pass), args.start, args.days)))
        return

    from medallion_assets.domains.retail import stage
    from medallion_assets.framework.partitions import PartitionWindow

    with tempfile.TemporaryDirectory() as scratch:
        home = (args.home or Path(scratch) / "lakehouse").resolve()
        started = time.monotonic()
        stage(home / "landing", PartitionWindow(args.start, args.start + timedelta(days=args.days)), scale=args.scale)
        stage_s = time.monotonic() - started

        # The same driver heap as the plain pass's session, so neither side wins by memory.
        env = {
            "MEDALLION_SPARK_DRIVER_MEMORY": PLAIN_DRIVER_MEMORY,
            **os.environ,
            "MEDALLION_HOME": str(home),
            "DAGSTER_HOME": str(home / "dagster"),
        }
        medallion = Path(sys.executable).with_name("medallion")
        log = home / "bench_retail_run.log"
        window = ["--start", args.start.isoformat(), "--days", str(args.days)]
        command = [str(medallion), "run", "--domain", "retail", "--no-stage", "--quiet", *window]
        wall, peaks, code = run_measured_by_process(command, env=env, output=log)
        output = log.read_text()
        if code != 0:
            sys.exit(f"medallion run failed ({code}):\n{output[-3000:]}")
        tables = per_table_seconds(output)
        rows = rows_per_layer(home)

        started = time.monotonic()
        plain = subprocess.run(
            [sys.executable, "-m", __spec__.name, "--plain-pass", str(home), *window],
            capture_output=True,
            text=True,
            check=True,
        )
        plain_wall = time.monotonic() - started
        plain_work = json.loads(plain.stdout.strip().splitlines()[-1])
        duckdb_s = duckdb_pass(home, args.start, args.days)

    print(f"retail, TPC-H scale factor {args.scale:g}, {args.days} days from {args.start}, on {os.cpu_count()} cores")
    print(f"  staging: {stage_s:.1f} s")
    print("  rows: " + ", ".join(f"{layer} {rows[layer]:,}" for layer in ("bronze", "silver", "gold")))
    print(f"  medallion run (process):      {wall:7.1f} s")
    print(
        f"  plain PySpark pass (process): {plain_wall:7.1f} s  (work {plain_work['work_s']:.1f} s, "
        f"session start {plain_work['session_s']:.1f} s)"
    )
    print(f"  DuckDB, the same KPIs:        {duckdb_s:7.1f} s")
    print(f"  ratio medallion / plain PySpark: {wall / plain_wall:.2f}x; medallion / DuckDB: {wall / duckdb_s:.1f}x")
    print(
        f"  peak memory: Python driver {peaks.get('driver', 0) / 2**20:,.0f} MiB,"
        f" JVM {peaks.get('java', 0) / 2**20:,.0f} MiB,"
        f" PySpark's Python workers {peaks.get('workers', 0) / 2**20:,.0f} MiB"
    )
    for table, seconds in sorted(tables.items(), key=lambda item: -item[1]):
        print(f"    {table:36s} {seconds:7.1f} s")


if __name__ == "__main__":
    main()
