"""Delta maintenance as assets: OPTIMIZE Z-ordered on the declared columns, VACUUM with the declared retention.

Maintenance never changes a row, deletes only files older than the retention that no version reads, and completes
alongside a build writing the same table at the same moment.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetKey, materialize

from medallion_assets.definitions import defs, maintenance_assets_of
from medallion_assets.domains import CATALOG, DOMAINS
from medallion_assets.framework.delta_io import sql_name, write_window
from medallion_assets.framework.lakehouse import PathLakehouse
from medallion_assets.framework.maintenance import (
    MaintenanceMeta,
    days_written_since_zorder,
    maintain_table,
    maintenance_path,
)
from medallion_assets.framework.partitions import PartitionWindow
from medallion_assets.framework.table import Maintenance, TableDeclaration, TableKey
from medallion_assets.orchestration.compute import LocalSparkCompute
from medallion_assets.runtime.bundle import bundle_document, maintenance_task_key, task_key
from medallion_assets_tests.support import TWO_DAYS, read, record_commit_conflicts, sorted_rows

SILVER_FLIGHTS = CATALOG[TableKey("silver", "flights")]
WINDOW = PartitionWindow.for_keys(*TWO_DAYS)
AUDIT = ("_ingested_at", "_run_id")


def _history(spark: Any, home: Path, key: TableKey) -> list[Any]:
    location = PathLakehouse(str(home)).table(key)
    return spark.sql(f"DESCRIBE HISTORY {sql_name(location)}").orderBy("version").collect()


def _data_files(home: Path, key: TableKey) -> list[Path]:
    return sorted((home / "warehouse" / key.layer / key.name).rglob("*.parquet"))


def test_maintenance_zorders_vacuums_aged_files_only_and_changes_no_row(spark: Any, lakehouse_copy: Path) -> None:
    key, quarantine = SILVER_FLIGHTS.key, SILVER_FLIGHTS.quarantine_key
    before = {k: sorted_rows(read(spark, lakehouse_copy, *k.path), AUDIT) for k in (key, quarantine)}
    # Files no version reads: one a crashed writer left eight days ago, one left six days ago. The seven days of
    # declared retention delete the first and keep the second.
    live = _data_files(lakehouse_copy, key)[0]
    aged, recent = live.with_name("part-orphan-aged.parquet"), live.with_name("part-orphan-recent.parquet")
    for orphan, age in ((aged, timedelta(days=8)), (recent, timedelta(days=6))):
        shutil.copy(live, orphan)
        stamp = time.time() - age.total_seconds()
        os.utime(orphan, (stamp, stamp))

    result = materialize(
        maintenance_assets_of["flights"],
        selection=[AssetKey(maintenance_path(key))],
        resources={"compute": LocalSparkCompute(home=str(lakehouse_copy))},
    )

    assert result.success
    (event,) = result.asset_materializations_for_node("maintenance__silver__flights")
    metadata = {name: value.value for name, value in event.metadata.items()}
    assert metadata[MaintenanceMeta.ZORDER_BY] == "carrier, origin"
    assert metadata[MaintenanceMeta.RETAIN_HOURS] == 168
    # One file per day before and after: Z-ordering rewrote each day's file in the columns' order.
    assert metadata[f"flights/{MaintenanceMeta.FILES_BEFORE}"] == metadata[f"flights/{MaintenanceMeta.FILES_AFTER}"]
    assert metadata[f"flights/{MaintenanceMeta.FILES_REWRITTEN}"] == len(TWO_DAYS)
    assert metadata[f"flights/{MaintenanceMeta.FILES_VACUUMED}"] == 1
    assert f"flights_quarantine/{MaintenanceMeta.FILES_AFTER}" in metadata
    assert not aged.exists() and recent.exists()
    for k, rows in before.items():
        assert sorted_rows(read(spark, lakehouse_copy, *k.path), AUDIT) == rows, k

    operations = {row["operation"]: row for row in _history(spark, lakehouse_copy, key)}
    assert operations["OPTIMIZE"]["operationParameters"]["zOrderBy"] == '["carrier","origin"]'
    assert {"VACUUM START", "VACUUM END"} <= set(operations)


def test_each_pass_zorders_only_the_days_written_since_the_last(spark: Any, lakehouse_copy: Path) -> None:
    lakehouse = PathLakehouse(str(lakehouse_copy))
    location = lakehouse.table(SILVER_FLIGHTS.key)
    first = maintain_table(spark, lakehouse, SILVER_FLIGHTS).metadata
    # No pass yet: every day is Z-ordered.
    assert first[f"flights/{MaintenanceMeta.DAYS_OPTIMIZED}"] == "all"
    assert first[f"flights/{MaintenanceMeta.FILES_REWRITTEN}"] == len(TWO_DAYS)
    assert days_written_since_zorder(spark, location, SILVER_FLIGHTS.maintenance.zorder_by) == []
    unchanged = maintain_table(spark, lakehouse, SILVER_FLIGHTS).metadata
    assert unchanged[f"flights/{MaintenanceMeta.FILES_REWRITTEN}"] == 0

    # A re-run of the second day: the next pass rewrites that day's file only.
    second_day = PartitionWindow.for_keys(TWO_DAYS[1], TWO_DAYS[1])
    stored = read(spark, lakehouse_copy, "silver", "flights").where(second_day.predicate("partition_date"))
    write_window(spark.createDataFrame(stored.collect(), stored.schema), location, second_day, "partition_date")
    assert days_written_since_zorder(spark, location, SILVER_FLIGHTS.maintenance.zorder_by) == [second_day]
    rerun = maintain_table(spark, lakehouse, SILVER_FLIGHTS).metadata
    assert rerun[f"flights/{MaintenanceMeta.DAYS_OPTIMIZED}"] == 1
    assert rerun[f"flights/{MaintenanceMeta.FILES_REWRITTEN}"] == 1
    # Z-ordered by other columns than the declaration's: every day again.
    assert days_written_since_zorder(spark, location, ("dest",)) is None


def test_a_table_not_built_yet_is_skipped_not_failed(spark: Any, tmp_path: Path) -> None:
    report = maintain_table(spark, PathLakehouse(str(tmp_path)), SILVER_FLIGHTS)
    assert report.metadata[f"flights/{MaintenanceMeta.SKIPPED}"] == "not built yet"
    assert report.metadata[f"flights_quarantine/{MaintenanceMeta.SKIPPED}"] == "not built yet"


def _at_once(*actions: Callable[[], Any]) -> list[BaseException]:
    """Run the actions in threads released together; the errors they raised."""
    start, errors = threading.Barrier(len(actions)), []

    def run(action: Callable[[], Any]) -> None:
        start.wait()
        try:
            action()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(action,)) for action in actions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_maintenance_and_a_write_of_the_same_table_at_once_both_complete(
    spark: Any, lakehouse_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lakehouse = PathLakehouse(str(lakehouse_copy))
    location = lakehouse.table(SILVER_FLIGHTS.key)
    stored = read(spark, lakehouse_copy, "silver", "flights")
    expected = sorted_rows(stored)
    rows = spark.createDataFrame(stored.collect(), stored.schema)
    retried = record_commit_conflicts(monkeypatch)
    rounds = 0
    # A rebuild of the window and a maintenance pass overlap in time; rounds make at least one conflict all but
    # certain, and every round must end with both done and the same rows.
    while rounds < 4 and not retried:
        rounds += 1
        errors = _at_once(
            lambda: write_window(rows, location, WINDOW, SILVER_FLIGHTS.partition_column),
            lambda: maintain_table(spark, lakehouse, SILVER_FLIGHTS),
        )
        assert not errors, errors
        assert sorted_rows(read(spark, lakehouse_copy, "silver", "flights")) == expected, f"round {rounds}"
    assert retried, f"a write and maintenance of one table never conflicted in {rounds} rounds"
    print(f"\n{len(retried)} commit conflict(s) retried in {rounds} round(s); every row kept")


def test_every_table_has_one_maintenance_asset_and_one_bundle_task_after_its_build() -> None:
    graph = defs.resolve_asset_graph()
    keys = set(graph.get_all_asset_keys())
    for table_key in CATALOG:
        maintenance = AssetKey(maintenance_path(table_key))
        assert maintenance in keys, table_key
        assert graph.get(maintenance).parent_keys == {AssetKey(table_key.path)}
    schedules = {schedule.name: schedule for schedule in defs.schedules}
    for domain, assets in maintenance_assets_of.items():
        schedule = schedules[f"{domain}_table_maintenance_schedule"]
        assert schedule.cron_schedule == "0 3 * * 0" and schedule.execution_timezone == "UTC"
        assert {key for asset in assets for key in asset.keys} == {
            AssetKey(maintenance_path(table.key)) for table in DOMAINS[domain].TABLES
        }
    jobs = bundle_document({"flights": [SILVER_FLIGHTS]})["resources"]["jobs"]
    for job in jobs.values():
        (maintain,) = [task for task in job["tasks"] if task["task_key"] == maintenance_task_key(SILVER_FLIGHTS.key)]
        assert maintain["depends_on"] == [{"task_key": task_key(SILVER_FLIGHTS.key)}]
        assert "--maintain" in maintain["python_wheel_task"]["parameters"]


def test_maintenance_declarations_are_checked() -> None:
    with pytest.raises(ValueError, match="retain at least 7 days"):
        Maintenance(retain=timedelta(days=1))
    with pytest.raises(ValueError, match="partition column"):
        TableDeclaration(
            **{**_fields(SILVER_FLIGHTS), "maintenance": Maintenance(zorder_by=(SILVER_FLIGHTS.partition_column,))}
        )
    with pytest.raises(ValueError, match=r"\['carrier_code'\], which the table does not have"):
        TableDeclaration(**{**_fields(SILVER_FLIGHTS), "maintenance": Maintenance(zorder_by=("carrier_code",))})


def _fields(table: TableDeclaration) -> dict[str, Any]:
    return {name: getattr(table, name) for name in table.__dataclass_fields__}
