"""Concurrent writers on one Delta table: different days both land; the same day ends with no duplicates."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

from medallion_assets.domains import CATALOG
from medallion_assets.framework.execution import run_table
from medallion_assets.framework.lakehouse import PathLakehouse
from medallion_assets.framework.partitions import PartitionWindow
from medallion_assets.framework.table import TableKey
from medallion_assets_tests.support import LakehouseRun, read, sorted_rows

BRONZE_FLIGHTS = CATALOG[TableKey("bronze", "flights")]
DAY_ONE, DAY_TWO = date(2013, 1, 1), date(2013, 1, 2)


def write_day(spark, home: Path, day: date, run_id: str):
    return run_table(
        spark, PathLakehouse(str(home)), BRONZE_FLIGHTS, CATALOG, PartitionWindow.single_day(day), run_id=run_id
    )


def test_two_different_partitions_written_concurrently_both_land(
    spark, lakehouse_two_days: LakehouseRun, tmp_path
) -> None:
    home = tmp_path / "home"
    shutil.copytree(lakehouse_two_days.home / "landing", home / "landing")
    expected = read(spark, lakehouse_two_days.home, "bronze", "flights")
    # Create the table first: two writers racing to create it is a different (unsupported) situation.
    write_day(spark, home, DAY_ONE, "setup")
    with ThreadPoolExecutor(max_workers=2) as pool:
        reports = list(pool.map(lambda args: write_day(spark, home, *args), [(DAY_ONE, "a"), (DAY_TWO, "b")]))
    assert all(check.passed for report in reports for check in report.checks)
    drop = ("_ingested_at", "_run_id")
    assert sorted_rows(read(spark, home, "bronze", "flights"), drop) == sorted_rows(expected, drop)


def test_the_same_partition_written_concurrently_is_consistent_without_duplicates(
    spark, lakehouse_two_days: LakehouseRun, tmp_path
) -> None:
    home = tmp_path / "home"
    shutil.copytree(lakehouse_two_days.home / "landing", home / "landing")
    write_day(spark, home, DAY_ONE, "setup")
    with ThreadPoolExecutor(max_workers=2) as pool:
        reports = list(pool.map(lambda run_id: write_day(spark, home, DAY_TWO, run_id), ["a", "b"]))
    table = read(spark, home, "bronze", "flights")
    day_two = table.where("partition_date = DATE'2013-01-02'")
    assert day_two.count() == 943
    assert day_two.select("_run_id").distinct().count() == 1  # one writer's rows, never a mix
    assert table.where("partition_date = DATE'2013-01-01'").count() == 842
    assert all(report.metadata["rows_out"] == 943 for report in reports)
