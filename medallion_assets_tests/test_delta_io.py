"""A write reports the Delta version it committed and the rows its window holds, found in the table's own log."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from delta.tables import DeltaTable

from medallion_assets.framework import delta_io
from medallion_assets.framework.delta_io import write_window
from medallion_assets.framework.lakehouse import TableLocation
from medallion_assets.framework.partitions import PartitionWindow

SCHEMA = "id bigint, day date"
FIRST, SECOND = PartitionWindow.single_day(date(2013, 1, 1)), PartitionWindow.single_day(date(2013, 1, 2))


def rows(spark, day: date, count: int):
    return spark.createDataFrame([(i, day) for i in range(count)], SCHEMA)


def latest_commit(spark, location: TableLocation):
    return DeltaTable.forPath(spark, location.identifier).history(1).first()


def test_each_write_reports_its_own_version_and_the_rows_of_its_window(spark, tmp_path: Path) -> None:
    location = TableLocation(str(tmp_path / "table"), is_path=True)
    created = write_window(rows(spark, FIRST.start, 3), location, FIRST, "day")
    other_day = write_window(rows(spark, SECOND.start, 5), location, SECOND, "day")
    replaced = write_window(rows(spark, FIRST.start, 2), location, FIRST, "day")
    assert (created.version, created.window_rows) == (0, 3)
    assert (other_day.version, other_day.window_rows) == (1, 5)
    # A re-run replaces its window: the count is the window's rows now, not the rows ever written to it.
    assert (replaced.version, replaced.window_rows) == (2, 2)
    assert latest_commit(spark, location)["userMetadata"].startswith("medallion_assets write ")


def test_an_empty_write_into_an_empty_window_commits_nothing_and_counts_zero(spark, tmp_path: Path) -> None:
    location = TableLocation(str(tmp_path / "table"), is_path=True)
    write_window(rows(spark, FIRST.start, 3), location, FIRST, "day")
    empty = write_window(rows(spark, SECOND.start, 0), location, SECOND, "day")
    assert empty.window_rows == 0
    assert empty.version == latest_commit(spark, location)["version"]
    # Emptying a window that held rows is a real commit that removes them.
    emptied = write_window(rows(spark, FIRST.start, 0), location, FIRST, "day")
    assert emptied.window_rows == 0 and emptied.version == latest_commit(spark, location)["version"]
    assert spark.read.format("delta").load(location.identifier).count() == 0


def test_a_commit_is_found_under_later_commits_by_log_and_by_history_alike(spark, tmp_path: Path) -> None:
    location = TableLocation(str(tmp_path / "table"), is_path=True)
    mine = write_window(rows(spark, FIRST.start, 4), location, FIRST, "day")
    token = DeltaTable.forPath(spark, location.identifier).history(1).first()["userMetadata"]
    # Another writer commits on top before the first one looks its commit up.
    write_window(rows(spark, SECOND.start, 7), location, SECOND, "day")
    assert delta_io._local_log_commit(location, token) == (mine.version, 4)
    assert delta_io._history_commit(spark, location, token) == (mine.version, 4)
