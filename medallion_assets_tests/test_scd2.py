"""SCD Type 2 history of a reference table, built day by day and in one range, from real Delta tables."""

from __future__ import annotations

import re
import shutil
from datetime import date
from pathlib import Path

import pytest

from medallion_assets.domains import flights
from medallion_assets.domains.flights.landing import _package_csv
from medallion_assets.framework.errors import HistoryOutOfOrder
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


REBUILD = re.compile(r"Rebuild (\d{4}-\d{2}-\d{2})(?:\.\.(\d{4}-\d{2}-\d{2}))? in one run")
REAL_DAYS = [date(2013, 6, 1), date(2013, 6, 2), date(2013, 6, 3)]


def real_airline_snapshots() -> dict[date, str]:
    """The real carrier list, as it changed: a rename on the second day, a carrier gone on the third."""
    first = _package_csv("airlines")
    assert "US Airways Inc." in first and "AirTran Airways Corporation" in first
    renamed = first.replace("US Airways Inc.", "American Airlines Group (US Airways)")
    merged = "\n".join(line for line in renamed.splitlines() if not line.startswith("FL,")) + "\n"
    return dict(zip(REAL_DAYS, [first, renamed, merged], strict=True))


@pytest.fixture(scope="module")
def real_bronze(spark, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("real-airlines")
    for day, content in real_airline_snapshots().items():
        folder = home / "landing/airlines" / day.isoformat()
        folder.mkdir(parents=True)
        (folder / "airlines.csv").write_text(content)
    key = TableKey("bronze", "airlines")
    run_table(
        spark,
        PathLakehouse(str(home)),
        CATALOG[key],
        CATALOG,
        PartitionWindow(REAL_DAYS[0], date(2013, 6, 4)),
        run_id="b",
    )
    return home


def build_silver_in_order(spark, home: Path, order: list[date]) -> list[str]:
    """Build each day; when the build refuses, rebuild the window its message names. Returns the refusals."""
    lakehouse, key = PathLakehouse(str(home)), TableKey("silver", "airlines")
    refusals = []
    for day in order:
        try:
            run_table(spark, lakehouse, CATALOG[key], CATALOG, PartitionWindow.single_day(day), run_id="order")
        except HistoryOutOfOrder as refusal:
            refusals.append(str(refusal))
            named = REBUILD.search(str(refusal))
            assert named, refusal
            window = PartitionWindow.for_keys(named[1], named[2] or named[1])
            run_table(spark, lakehouse, CATALOG[key], CATALOG, window, run_id="order")
    return refusals


def whole_table(spark, home: Path) -> list[tuple]:
    table = spark.read.format("delta").load(str(home / "warehouse/silver/airlines"))
    columns = ["carrier", "name", "row_hash", "valid_from", "valid_to", "is_current", "partition_date"]
    return sorted(tuple(str(row[c]) for c in columns) for row in table.collect())


def test_history_is_the_same_in_every_build_order(spark, real_bronze: Path, tmp_path: Path) -> None:
    tables, refusals = {}, {}
    for name, order in {
        "forward": REAL_DAYS,
        "reverse": REAL_DAYS[::-1],
        "shuffled": [REAL_DAYS[1], REAL_DAYS[0], REAL_DAYS[2]],
    }.items():
        home = tmp_path / name
        shutil.copytree(real_bronze, home)
        refusals[name] = build_silver_in_order(spark, home, order)
        tables[name] = whole_table(spark, home)
    assert refusals["forward"] == []
    assert len(refusals["reverse"]) == 2 and "Rebuild 2013-06-01..2013-06-03" in refusals["reverse"][-1]
    assert tables["reverse"] == tables["forward"] and tables["shuffled"] == tables["forward"]
    closed = {(row[0], row[4]) for row in tables["forward"] if row[5] == "False"}
    # The US Airways version before the rename closed on the second day, and AirTran's on the third.
    assert closed == {("US", "2013-06-02"), ("FL", "2013-06-03")}
