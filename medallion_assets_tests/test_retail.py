"""The retail domain (TPC-H) end to end, with its gold KPIs recomputed by DuckDB from the generator's raw files."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from dagster import AssetKey

from medallion_assets.domains import retail
from medallion_assets.domains.retail.landing import CUSTOMER, STATIC_SOURCES, generated
from medallion_assets.framework.partitions import PartitionWindow
from medallion_assets_tests.support import LakehouseRun, check_evaluations, materialize_window, materialized_keys, read

SCALE = 0.01
WINDOW = PartitionWindow(date(1995, 3, 1), date(1995, 3, 3))
LAST_DAY = WINDOW.last_day
MONEY = "DECIMAL(15,2)"
# The generator's raw files, read by DuckDB with TPC-H's own types.
RAW_TYPES = {
    "orders": {"o_totalprice": MONEY, "o_orderdate": "DATE"},
    "lineitem": {
        **dict.fromkeys(("l_quantity", "l_extendedprice", "l_discount", "l_tax"), MONEY),
        **dict.fromkeys(("l_shipdate", "l_commitdate", "l_receiptdate"), "DATE"),
    },
    "customer": {"c_acctbal": MONEY},
    "supplier": {"s_acctbal": MONEY},
    "nation": {},
    "region": {},
}
REVENUE = "l_extendedprice * (1 - l_discount)"
ORACLE_FROM = """
    FROM lineitem JOIN orders ON l_orderkey = o_orderkey
    JOIN customer ON o_custkey = c_custkey
    JOIN nation AS customer_nation ON c_nationkey = customer_nation.n_nationkey
    JOIN region ON customer_nation.n_regionkey = r_regionkey
    JOIN supplier ON l_suppkey = s_suppkey
    WHERE o_orderdate BETWEEN $first AND $last
"""
ORACLE = {
    "daily_revenue": (
        ("order_date", "nation", "region", "market_segment"),
        f"""SELECT o_orderdate, customer_nation.n_name, r_name, c_mktsegment, count(DISTINCT o_orderkey), count(*),
            sum({REVENUE}), sum(CASE WHEN s_nationkey = c_nationkey THEN {REVENUE} ELSE 0 END),
            sum(CASE WHEN l_returnflag = 'R' THEN {REVENUE} ELSE 0 END)
            {ORACLE_FROM} GROUP BY ALL""",
        ("orders", "lines", "revenue", "local_supplier_revenue", "returned_revenue"),
    ),
    "daily_pricing_summary": (
        ("order_date", "return_flag", "line_status"),
        f"""SELECT o_orderdate, l_returnflag, l_linestatus, sum(l_quantity), sum(l_extendedprice), sum({REVENUE}),
            sum({REVENUE} * (1 + l_tax)), avg(l_quantity), avg(l_extendedprice), avg(l_discount), count(*)
            {ORACLE_FROM} GROUP BY ALL""",
        (
            "sum_qty",
            "sum_base_price",
            "sum_disc_price",
            "sum_charge",
            "avg_qty",
            "avg_price",
            "avg_disc",
            "count_order",
        ),
    ),
    "daily_shipping_priority": (
        ("order_date", "order_priority", "ship_priority"),
        f"""SELECT o_orderdate, o_orderpriority, o_shippriority, count(DISTINCT o_orderkey),
            count(DISTINCT CASE WHEN l_receiptdate > l_commitdate THEN o_orderkey END), count(*),
            count(*) FILTER (l_receiptdate > l_commitdate),
            count(*) FILTER (o_orderpriority IN ('1-URGENT', '2-HIGH')), sum({REVENUE}),
            count(*) FILTER (l_receiptdate > l_commitdate) / count(*)
            {ORACLE_FROM} GROUP BY ALL""",
        ("orders", "late_orders", "lines", "late_lines", "high_priority_lines", "revenue", "late_line_rate"),
    ),
}
# DuckDB averages a DECIMAL as a DOUBLE; Spark keeps a DECIMAL(19,6). Sums and counts are compared exactly.
APPROXIMATE = {"avg_qty", "avg_price", "avg_disc", "late_line_rate"}


def landed_files(days: int) -> int:
    """One file per source and day, and one per static source."""
    return sum(1 if source.static else days for source in retail.LANDING_SOURCES)


@pytest.fixture(scope="module")
def generator_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    cache = tmp_path_factory.mktemp("tpch-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEDALLION_TPCH_CACHE", str(cache))
        yield cache


@pytest.fixture(scope="module")
def retail_lakehouse(tmp_path_factory: pytest.TempPathFactory, spark, generator_cache: Path) -> LakehouseRun:
    home = tmp_path_factory.mktemp("retail")
    staged = retail.stage(home / "landing", WINDOW, progress=False, scale=SCALE)
    assert staged == {"files_written": landed_files(WINDOW.day_count), "files_unchanged": 0}
    return materialize_window(home, WINDOW.start.isoformat(), LAST_DAY.isoformat(), domain="retail")


@pytest.fixture(scope="module")
def oracle(generator_cache: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    raw = generated(SCALE)
    connection = duckdb.connect()
    for name, types in RAW_TYPES.items():
        path = str(raw / f"{name}.csv").replace("'", "''")
        # A view's definition cannot take a prepared parameter, so the path is a quoted literal.
        connection.execute(f"CREATE VIEW {name} AS SELECT * FROM read_csv('{path}', header = true, types = {types!r})")
    yield connection
    connection.close()


def test_every_retail_table_is_built_and_every_check_passes(retail_lakehouse: LakehouseRun) -> None:
    result = retail_lakehouse.result
    assert materialized_keys(result) == {AssetKey(table.key.path) for table in retail.TABLES}
    evaluations = check_evaluations(result)
    declared = {(str(table.key), check) for table in retail.TABLES for check in table.check_names}
    assert set(evaluations) == declared
    assert sorted(f"{asset}:{check}" for (asset, check), e in evaluations.items() if not e.passed) == []


def _by_group(rows: list[tuple], group_size: int) -> dict[tuple, tuple]:
    return {tuple(row[:group_size]): tuple(row[group_size:]) for row in rows}


@pytest.mark.parametrize("table", sorted(ORACLE))
def test_gold_kpis_equal_duckdb_over_the_raw_generated_files(spark, retail_lakehouse, oracle, table: str) -> None:
    group, sql, measures = ORACLE[table]
    expected = _by_group(oracle.execute(sql, {"first": WINDOW.start, "last": LAST_DAY}).fetchall(), len(group))
    rows = read(spark, retail_lakehouse.home, "gold", table).select(*group, *measures).collect()
    actual = _by_group([tuple(row) for row in rows], len(group))
    assert expected, "the oracle found no rows: the window has no orders"
    assert actual.keys() == expected.keys()
    for key, values in expected.items():
        for measure, want, got in zip(measures, values, actual[key], strict=True):
            if measure in APPROXIMATE:
                assert float(got) == pytest.approx(float(want), abs=1e-6), (table, key, measure)
            else:
                # Exact: a DECIMAL sum equals its oracle to the last digit, and a count to the last row.
                assert isinstance(got, int | Decimal), (table, measure, type(got))
                assert got == want, (table, key, measure)


def test_no_line_is_lost_from_landing_to_the_fact_table(spark, retail_lakehouse, oracle) -> None:
    raw_lines = oracle.execute(
        "SELECT count(*) FROM lineitem JOIN orders ON l_orderkey = o_orderkey WHERE o_orderdate BETWEEN ? AND ?",
        [WINDOW.start, LAST_DAY],
    ).fetchone()[0]
    home = retail_lakehouse.home
    counts = {
        layer: read(spark, home, layer, name).count()
        for layer, name in (("bronze", "lineitem"), ("silver", "lineitem"), ("gold", "fact_sales"))
    }
    assert counts == {"bronze": raw_lines, "silver": raw_lines, "gold": raw_lines}
    assert read(spark, home, "silver", "lineitem_quarantine").count() == 0


def test_static_reference_files_land_once_and_every_day_holds_them(spark, retail_lakehouse) -> None:
    landing = retail_lakehouse.home / "landing"
    for source in STATIC_SOURCES:
        assert [path.name for path in (landing / source.name).iterdir()] == [f"{source.name}.csv"]
        data_lines = len((landing / source.name / f"{source.name}.csv").read_text().splitlines()) - 1
        bronze = read(spark, retail_lakehouse.home, "bronze", source.name)
        per_day = {row[0]: row[1] for row in bronze.groupBy("partition_date").count().collect()}
        assert per_day == dict.fromkeys(WINDOW.days(), data_lines), source.name
        assert {row[0] for row in bronze.select("_source_file").distinct().collect()} == {
            f"{source.name}/{source.name}.csv"
        }
        silver = read(spark, retail_lakehouse.home, "silver", source.name)
        assert silver.count() == data_lines * WINDOW.day_count, source.name


def test_customer_history_records_exactly_the_changes_between_daily_snapshots(spark, retail_lakehouse) -> None:
    """Compared with DuckDB over the landed snapshot files, not with the rule that staged them."""
    landing = retail_lakehouse.home / "landing" / CUSTOMER.name
    changed_on: dict[date, set[int]] = {}
    connection = duckdb.connect()
    for day in list(WINDOW.days())[1:]:
        before, after = (landing / (day - timedelta(days=1)).isoformat(), landing / day.isoformat())
        changed_on[day] = {
            key
            for (key,) in connection.execute(
                "SELECT a.c_custkey FROM read_csv(?, types = {'c_acctbal': 'DECIMAL(15,2)'}) a "
                "JOIN read_csv(?, types = {'c_acctbal': 'DECIMAL(15,2)'}) b USING (c_custkey) "
                "WHERE a.c_acctbal <> b.c_acctbal",
                [str(before / "customer.csv"), str(after / "customer.csv")],
            ).fetchall()
        }
    customers = read(spark, retail_lakehouse.home, "silver", "customer")
    closed = {
        day: {row.custkey for row in customers.where(f"valid_to = DATE'{day}'").select("custkey").collect()}
        for day in changed_on
    }
    assert all(changed_on.values()), "every day should change some customers' balances"
    assert closed == changed_on
    per_day = customers.where("is_current").groupBy("partition_date").count().collect()
    assert {row["count"] for row in per_day} == {1500}


def test_staging_is_idempotent_and_reuses_the_generated_files(tmp_path: Path, generator_cache: Path) -> None:
    landing = tmp_path / "landing"
    first = retail.stage(landing, WINDOW, progress=False, scale=SCALE)
    modified = {path: path.stat().st_mtime_ns for path in landing.rglob("*.csv")}
    again = retail.stage(landing, WINDOW, progress=False, scale=SCALE)
    assert first["files_written"] == len(modified) == landed_files(WINDOW.day_count)
    assert again == {"files_written": 0, "files_unchanged": len(modified)}
    assert {path: path.stat().st_mtime_ns for path in landing.rglob("*.csv")} == modified
    assert [path.name for path in generator_cache.iterdir()] == [f"sf{SCALE:g}"]
