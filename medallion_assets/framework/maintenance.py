"""Delta table maintenance: OPTIMIZE (Z-ordered on the declared columns), then VACUUM with the declared retention.

A year of daily `replaceWhere` writes leaves every replaced file on storage, and a re-run or a backfill replaces
days again. OPTIMIZE rewrites each day's files Z-ordered by the columns readers filter on within a day; VACUUM then
deletes the files no version within the retention reads any more. Both are plain SQL, which classic sessions and
Spark Connect (serverless) run alike ([Delta Lake: Optimizations](https://docs.delta.io/latest/optimizations-oss.html),
[Databricks: VACUUM](https://docs.databricks.com/en/sql/language-manual/delta-vacuum.html)).

Both commit to the table, so they can conflict with a build writing the same table at the same moment. Either
side then retries on Delta's conflict error (`delta_io.retry_on_conflict`): a write replaces its window again,
OPTIMIZE compacts again, and neither loses a row.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Final

from pyspark.sql import SparkSession

from medallion_assets.framework.delta_io import retry_on_conflict, sql_name, table_exists
from medallion_assets.framework.lakehouse import Lakehouse, TableLocation
from medallion_assets.framework.table import Maintenance, TableDeclaration, TableKey

# A maintenance asset's key is its table's, under this prefix: `maintenance/silver/flights`.
MAINTENANCE_PREFIX: Final = "maintenance"


def maintenance_path(key: TableKey) -> list[str]:
    return [MAINTENANCE_PREFIX, *key.path]


class MaintenanceMeta:
    """Metadata keys of a maintenance materialization, per table maintained (`<table>/<key>`)."""

    FILES_BEFORE = "files_before"
    FILES_AFTER = "files_after"
    BYTES_AFTER = "bytes_after"
    FILES_REWRITTEN = "files_rewritten"
    FILES_WRITTEN = "files_written"
    FILES_VACUUMED = "files_vacuumed"
    ZORDER_BY = "zorder_by"
    RETAIN_HOURS = "retain_hours"
    DURATION_S = "duration_s"
    SKIPPED = "skipped"


@dataclass
class MaintenanceReport:
    """What maintaining a table did, in plain values that travel over Dagster Pipes like a build's report."""

    table: TableKey
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> list[str]:
        return maintenance_path(self.table)


def _detail(spark: SparkSession, location: TableLocation) -> tuple[int, int]:
    """The files the current version reads, and their bytes."""
    row = spark.sql(f"DESCRIBE DETAIL {sql_name(location)}").select("numFiles", "sizeInBytes").first()
    return (int(row["numFiles"] or 0), int(row["sizeInBytes"] or 0)) if row else (0, 0)


def _vacuumed_files(spark: SparkSession, location: TableLocation) -> int | None:
    """How many files the VACUUM just run deleted, from its `VACUUM END` commit; None if it logged none."""
    commits = spark.sql(f"DESCRIBE HISTORY {sql_name(location)} LIMIT 1").select("operation", "operationMetrics")
    row = commits.first()
    if row is None or row["operation"] != "VACUUM END":
        return None
    return int((row["operationMetrics"] or {}).get("numDeletedFiles", 0))


def _maintain_one(
    spark: SparkSession, location: TableLocation, zorder_by: tuple[str, ...], plan: Maintenance
) -> dict[str, Any]:
    if not table_exists(spark, location):
        return {MaintenanceMeta.SKIPPED: "not built yet"}
    files_before, _ = _detail(spark, location)
    zorder = f" ZORDER BY ({', '.join(f'`{column}`' for column in zorder_by)})" if zorder_by else ""
    (optimized,) = retry_on_conflict(lambda: spark.sql(f"OPTIMIZE {sql_name(location)}{zorder}").collect())
    metrics = optimized["metrics"]
    retry_on_conflict(lambda: spark.sql(f"VACUUM {sql_name(location)} RETAIN {plan.retain_hours} HOURS").collect())
    files_after, bytes_after = _detail(spark, location)
    figures: dict[str, Any] = {
        MaintenanceMeta.FILES_BEFORE: files_before,
        MaintenanceMeta.FILES_REWRITTEN: int(metrics["numFilesRemoved"]),
        MaintenanceMeta.FILES_WRITTEN: int(metrics["numFilesAdded"]),
        MaintenanceMeta.FILES_AFTER: files_after,
        MaintenanceMeta.BYTES_AFTER: bytes_after,
    }
    vacuumed = _vacuumed_files(spark, location)
    if vacuumed is not None:
        figures[MaintenanceMeta.FILES_VACUUMED] = vacuumed
    return figures


def maintain_table(spark: SparkSession, lakehouse: Lakehouse, table: TableDeclaration) -> MaintenanceReport:
    """OPTIMIZE and VACUUM `table`, and its quarantine when it has one; a table not built yet is skipped."""
    started = time.monotonic()
    report = MaintenanceReport(table.key)
    report.metadata[MaintenanceMeta.ZORDER_BY] = ", ".join(table.maintenance.zorder_by) or "(none: compaction only)"
    report.metadata[MaintenanceMeta.RETAIN_HOURS] = table.maintenance.retain_hours
    plan = table.maintenance
    # The quarantine keeps bronze's lines, not the table's columns: it is compacted, not Z-ordered.
    parts = {table.key: plan.zorder_by, **({table.quarantine_key: ()} if table.has_quarantine else {})}
    for key, zorder_by in parts.items():
        for name, value in _maintain_one(spark, lakehouse.table(key), zorder_by, plan).items():
            report.metadata[f"{key.name}/{name}"] = value
    report.metadata[MaintenanceMeta.DURATION_S] = round(time.monotonic() - started, 3)
    return report
