"""A write reports the Delta version it committed and the rows its window holds, found with one history query.

Path tables and Unity Catalog style three-part names take the same code path: locally the session catalog
`spark_catalog` (Delta's DeltaCatalog) stands in for a Unity Catalog catalog, with per-user schemas named the
way a dev target names them.
"""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from medallion_assets.domains import CATALOG
from medallion_assets.domains.flights.landing import stage
from medallion_assets.framework import delta_io
from medallion_assets.framework.delta_io import read_window, table_exists, write_window
from medallion_assets.framework.execution import run_table
from medallion_assets.framework.lakehouse import TableLocation, UnityCatalogLakehouse
from medallion_assets.framework.partitions import PartitionWindow
from medallion_assets.framework.table import TableKey

SCHEMA = "id bigint, day date"
FIRST, SECOND = PartitionWindow.single_day(date(2013, 1, 1)), PartitionWindow.single_day(date(2013, 1, 2))
UC_CATALOG = "spark_catalog"


def rows(spark, day: date, count: int):
    return spark.createDataFrame([(i, day) for i in range(count)], SCHEMA)


def latest_commit(spark, location: TableLocation):
    return delta_io.history(spark, location, 1).first()


def path_table(tmp_path: Path) -> TableLocation:
    return TableLocation(str(tmp_path / "table"), is_path=True)


def test_each_write_reports_its_own_version_and_the_rows_of_its_window(spark, tmp_path: Path) -> None:
    location = path_table(tmp_path)
    created = write_window(rows(spark, FIRST.start, 3), location, FIRST, "day")
    other_day = write_window(rows(spark, SECOND.start, 5), location, SECOND, "day")
    replaced = write_window(rows(spark, FIRST.start, 2), location, FIRST, "day", note={"build": "b-1"})
    assert (created.version, created.window_rows) == (0, 3)
    assert (other_day.version, other_day.window_rows) == (1, 5)
    # A re-run replaces its window: the count is the window's rows now, not the rows ever written to it.
    assert (replaced.version, replaced.window_rows) == (2, 2)
    # The commit's userMetadata is JSON: the write's own token, and the note a reader pairs commits by.
    note = delta_io.commit_note(latest_commit(spark, location)["userMetadata"])
    assert note["build"] == "b-1" and len(note[delta_io.WRITE_TOKEN]) == 32
    assert note[delta_io.WRITTEN_DAYS] == [FIRST.start.isoformat(), FIRST.last_day.isoformat()]


def test_an_empty_write_into_an_empty_window_commits_nothing_and_counts_zero(spark, tmp_path: Path) -> None:
    location = path_table(tmp_path)
    write_window(rows(spark, FIRST.start, 3), location, FIRST, "day")
    empty = write_window(rows(spark, SECOND.start, 0), location, SECOND, "day")
    assert empty.window_rows == 0
    assert empty.version == latest_commit(spark, location)["version"]
    # Emptying a window that held rows is a real commit that removes them.
    emptied = write_window(rows(spark, FIRST.start, 0), location, FIRST, "day")
    assert emptied.window_rows == 0 and emptied.version == latest_commit(spark, location)["version"]
    assert spark.read.format("delta").load(location.identifier).count() == 0


def test_a_commit_is_found_under_later_commits(spark, tmp_path: Path) -> None:
    location = path_table(tmp_path)
    mine = write_window(rows(spark, FIRST.start, 4), location, FIRST, "day")
    token = delta_io.commit_note(latest_commit(spark, location)["userMetadata"])[delta_io.WRITE_TOKEN]
    # Another writer commits on top before the first one looks its commit up.
    write_window(rows(spark, SECOND.start, 7), location, SECOND, "day")
    assert delta_io.tagged_commit(spark, location, token) == (mine.version, 4)
    # A tag that is not there: the newest version, and no row count.
    assert delta_io.tagged_commit(spark, location, "absent") == (mine.version + 1, None)


def test_a_path_that_holds_no_delta_table_is_absent(spark, tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    for missing in (tmp_path / "nothing", tmp_path / "plain"):
        location = TableLocation(str(missing), is_path=True)
        assert not table_exists(spark, location)
        assert read_window(spark, location, FIRST, "day") is None


def test_staged_rows_are_read_back_whole_and_carry_no_column_statistics(spark, tmp_path: Path) -> None:
    rows = spark.range(40).selectExpr("id", "CAST(id % 4 AS STRING) AS part")
    scratch = TableLocation(str(tmp_path / "scratch"), is_path=True)
    staged = delta_io.stage_rows(rows, scratch)
    assert sorted(tuple(r) for r in staged.collect()) == sorted(tuple(r) for r in rows.collect())
    actions = [
        json.loads(line)
        for commit in (tmp_path / "scratch" / "_delta_log").glob("*.json")
        for line in commit.read_text().splitlines()
    ]
    added = [action["add"] for action in actions if "add" in action]
    # Row counts only: no minimum, maximum or null count per column to collect while writing.
    assert added and all(set(json.loads(add["stats"])) == {"numRecords"} for add in added)
    # Staging the same scratch table again replaces its rows.
    assert delta_io.stage_rows(rows.limit(3), scratch).count() == 3


@pytest.fixture
def uc_schemas(spark, tmp_path: Path) -> Iterator[dict[str, str]]:
    """One schema per layer in the session catalog, named like a dev target's per-user Unity Catalog schemas.

    A random user keeps a re-run in the same process apart from a schema an aborted test left behind; each
    schema's LOCATION is the test's temporary directory, so nothing lands in the working directory.
    """
    user = f"alice_{uuid.uuid4().hex[:8]}"
    schemas = {layer: f"dev_{user}_{layer}" for layer in ("bronze", "silver", "gold")}
    for layer, schema in schemas.items():
        spark.sql(f"CREATE SCHEMA IF NOT EXISTS `{UC_CATALOG}`.`{schema}` LOCATION '{tmp_path / 'uc' / layer}'")
    try:
        yield schemas
    finally:
        for schema in schemas.values():
            spark.sql(f"DROP SCHEMA IF EXISTS `{UC_CATALOG}`.`{schema}` CASCADE")


def test_a_three_part_name_writes_rereads_replaces_and_finds_its_commits(spark, uc_schemas: dict[str, str]) -> None:
    lakehouse = UnityCatalogLakehouse(catalog=UC_CATALOG, landing_volume="/unused", schemas=uc_schemas)
    location = lakehouse.table(TableKey("bronze", "events"))
    assert location.identifier == f"`{UC_CATALOG}`.`{uc_schemas['bronze']}`.`events`"
    assert not table_exists(spark, location)
    assert read_window(spark, location, FIRST, "day") is None

    created = write_window(rows(spark, FIRST.start, 3), location, FIRST, "day")  # saveAsTable creates it
    token = delta_io.commit_note(latest_commit(spark, location)["userMetadata"])[delta_io.WRITE_TOKEN]
    other_day = write_window(rows(spark, SECOND.start, 5), location, SECOND, "day")
    replaced = write_window(rows(spark, FIRST.start, 2), location, FIRST, "day", note={"build": "b-1"})
    assert [(c.version, c.window_rows) for c in (created, other_day, replaced)] == [(0, 3), (1, 5), (2, 2)]
    assert delta_io.tagged_commit(spark, location, token) == (0, 3)

    assert table_exists(spark, location)
    assert spark.catalog.tableExists(f"{UC_CATALOG}.{uc_schemas['bronze']}.events")
    first = read_window(spark, location, FIRST, "day")
    assert first is not None and sorted(r["id"] for r in first.collect()) == [0, 1]
    # The forName read: the table by its three-part name, every day of it.
    assert spark.table(location.identifier).count() == 7
    assert [r["version"] for r in delta_io.history(spark, location).collect()] == [2, 1, 0]


def test_run_table_builds_bronze_and_silver_airlines_as_unity_catalog_tables(
    spark, uc_schemas: dict[str, str], tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    stage(landing, FIRST, progress=False)
    lakehouse = UnityCatalogLakehouse(catalog=UC_CATALOG, landing_volume=str(landing), schemas=uc_schemas)
    for key in (TableKey("bronze", "airlines"), TableKey("silver", "airlines")):
        report = run_table(spark, lakehouse, CATALOG[key], CATALOG, FIRST, run_id="uc-test")
        assert report.metadata["table"] == lakehouse.table(key).identifier
        assert all(check.passed for check in report.checks), [c for c in report.checks if not c.passed]

    with (landing / "airlines" / FIRST.start.isoformat() / "airlines.csv").open(encoding="utf-8") as landed:
        expected = sorted((row["carrier"], row["name"]) for row in csv.DictReader(landed))
    silver = spark.table(f"`{UC_CATALOG}`.`{uc_schemas['silver']}`.`airlines`")
    stored = silver.select("carrier", "name", "is_current", "valid_from", "partition_date").collect()
    assert sorted((r["carrier"], r["name"]) for r in stored) == expected
    versions = {(r["is_current"], r["valid_from"], r["partition_date"]) for r in stored}
    assert versions == {(True, FIRST.start, FIRST.start)}
    assert spark.table(f"{UC_CATALOG}.{uc_schemas['bronze']}.airlines").count() == len(expected)
