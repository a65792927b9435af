"""SCD Type 2 history of a reference table, built day by day and in one range, from real Delta tables."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from medallion_assets.domains import flights
from medallion_assets.framework.execution import run_table
from medallion_assets.framework.lakehouse import PathLakehouse
from medallion_assets.framework.partitions import PartitionWindow
from medallion_assets.framework.table import TableKey

CATALOG = {table.key: table for table in flights.TABLES}
SNAPSHOTS = {
    date(2013, 1, 1): ["carrier,name", "AA,American Airlines Inc.", "UA,United Air Lines Inc."],
    date(2013, 1, 2): ["carrier,name", "AA,American Airlines Inc.", "UA,United Airlines Holdings"],
    date(2013, 1, 3): ["carrier,name", "UA,United Airlines Holdings"],
}


def land_snapshots(home: Path) -> None:
    for day, lines in SNAPSHOTS.items():
        folder = home / "landing/airlines" / day.isoformat()
        folder.mkdir(parents=True)
        (folder / "airlines.csv").write_text("\n".join(lines) + "\n")


def build(spark, home: Path, window: PartitionWindow) -> None:
    lakehouse = PathLakehouse(str(home))
    for key in (TableKey("bronze", "airlines"), TableKey("silver", "airlines")):
        report = run_table(spark, lakehouse, CATALOG[key], CATALOG, window, run_id="scd2")
        assert all(check.passed for check in report.checks), report.checks


def history(spark, home: Path) -> list[tuple]:
    table = spark.read.format("delta").load(str(home / "warehouse/silver/airlines"))
    latest = table.agg({"partition_date": "max"}).first()[0]
    rows = table.where(f"NOT is_current OR partition_date = DATE'{latest}'").collect()
    return sorted((r["carrier"], r["name"], str(r["valid_from"]), str(r["valid_to"]), r["is_current"]) for r in rows)


EXPECTED_HISTORY = [
    ("AA", "American Airlines Inc.", "2013-01-01", "2013-01-03", False),
    ("UA", "United Air Lines Inc.", "2013-01-01", "2013-01-02", False),
    ("UA", "United Airlines Holdings", "2013-01-02", "None", True),
]


def test_history_day_by_day_closes_changed_and_removed_versions(spark, tmp_path: Path) -> None:
    land_snapshots(tmp_path)
    for day in SNAPSHOTS:
        build(spark, tmp_path, PartitionWindow.single_day(day))
    assert history(spark, tmp_path) == EXPECTED_HISTORY


def test_one_range_run_gives_the_same_history_as_day_by_day(spark, tmp_path: Path) -> None:
    land_snapshots(tmp_path)
    build(spark, tmp_path, PartitionWindow(date(2013, 1, 1), date(2013, 1, 4)))
    assert history(spark, tmp_path) == EXPECTED_HISTORY


def test_rerunning_a_middle_day_keeps_valid_from(spark, tmp_path: Path) -> None:
    land_snapshots(tmp_path)
    build(spark, tmp_path, PartitionWindow(date(2013, 1, 1), date(2013, 1, 4)))
    build(spark, tmp_path, PartitionWindow.single_day(date(2013, 1, 2)))
    assert history(spark, tmp_path) == EXPECTED_HISTORY
