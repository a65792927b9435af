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

import json
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

from pyspark.sql import SparkSession

from medallion_assets.framework.delta_io import WRITTEN_DAYS, commit_note, retry_on_conflict, sql_name, table_exists
from medallion_assets.framework.lakehouse import Lakehouse, TableLocation
from medallion_assets.framework.partitions import PartitionWindow
from medallion_assets.framework.table import TableDeclaration, TableKey

# A maintenance asset's key is its table's, under this prefix: `maintenance/silver/flights`.
MAINTENANCE_PREFIX: Final = "maintenance"


def maintenance_path(key: TableKey) -> list[str]:
    return [MAINTENANCE_PREFIX, *key.path]


class MaintenanceMeta:
    """Metadata keys of a maintenance materialization, per table maintained (`<table>/<key>`)."""

    FILES_BEFORE = "files_before"
    FILES_AFTER = "files_after"
    BYTES_AFTER = "bytes_after"
    DAYS_OPTIMIZED = "days_optimized"
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


@dataclass(frozen=True)
class _Commit:
    version: int
    read_version: int | None
    operation: str
    zorder_by: list[str] | None
    written: PartitionWindow | None


MAINTENANCE_OPERATIONS = frozenset({"OPTIMIZE", "VACUUM START", "VACUUM END"})
# How many of the newest commits a pass searches for the last one: a week of daily writes, backfills and re-runs.
ZORDER_LOOKBACK = 200


def _commits(spark: SparkSession, location: TableLocation) -> list[_Commit]:
    """The newest commits, newest first, with what maintenance needs of each."""
    history = spark.sql(f"DESCRIBE HISTORY {sql_name(location)} LIMIT {ZORDER_LOOKBACK}")
    commits = []
    for row in history.select("version", "readVersion", "operation", "operationParameters", "userMetadata").collect():
        parameters = row["operationParameters"] or {}
        days = commit_note(row["userMetadata"]).get(WRITTEN_DAYS)
        commits.append(
            _Commit(
                version=int(row["version"]),
                read_version=None if row["readVersion"] is None else int(row["readVersion"]),
                operation=row["operation"],
                zorder_by=json.loads(parameters["zOrderBy"]) if parameters.get("zOrderBy") else None,
                written=PartitionWindow.for_keys(*days) if days else None,
            )
        )
    return commits


def _writes_between(commits: list[_Commit], after: int, up_to: int) -> list[PartitionWindow] | None:
    """The windows our writes replaced in versions (after, up_to]; None if a commit there is not ours."""
    windows = []
    for commit in commits:
        if after < commit.version <= up_to and commit.operation not in MAINTENANCE_OPERATIONS:
            if commit.written is None:
                return None
            windows.append(commit.written)
    return windows


def days_written_since_zorder(
    spark: SparkSession, location: TableLocation, zorder_by: tuple[str, ...]
) -> list[PartitionWindow] | None:
    """The windows our writes replaced since the table was last Z-ordered by `zorder_by`; None means every day.

    Delta does not remember which files are Z-ordered, so OPTIMIZE ZORDER BY rewrites every file it is given, each
    time: a year-long table's weekly pass would rewrite the whole year. Every write of ours notes its days in its
    commit (`delta_io.WRITTEN_DAYS`), so a pass can be limited to the days written after the version the last pass
    read. A commit there that is not ours, or a last pass further back than the history searched, means every day.
    """
    return _written_since_zorder(_commits(spark, location), zorder_by)


def _written_since_zorder(commits: list[_Commit], zorder_by: tuple[str, ...]) -> list[PartitionWindow] | None:
    last = next((c for c in commits if c.operation == "OPTIMIZE" and c.zorder_by == list(zorder_by)), None)
    if last is None or last.read_version is None:
        return None
    return _writes_between(commits, last.read_version, commits[0].version)


def _run_optimize(spark: SparkSession, statement: str) -> tuple[int, int]:
    """Files an OPTIMIZE statement rewrote and wrote, retried while a build's commit conflicts with it."""
    (optimized,) = retry_on_conflict(lambda: spark.sql(statement).collect())
    return int(optimized["metrics"]["numFilesRemoved"]), int(optimized["metrics"]["numFilesAdded"])


def _optimize(
    spark: SparkSession, location: TableLocation, zorder_by: tuple[str, ...], partition_column: str
) -> dict[str, Any]:
    """OPTIMIZE, Z-ordered and limited to the days written since the last pass when `zorder_by` names columns."""
    statement = f"OPTIMIZE {sql_name(location)}"
    if not zorder_by:
        # Compaction alone leaves a day's single file untouched, so every pass costs only what changed.
        rewritten, written = _run_optimize(spark, statement)
        return {
            MaintenanceMeta.DAYS_OPTIMIZED: "all",
            MaintenanceMeta.FILES_REWRITTEN: rewritten,
            MaintenanceMeta.FILES_WRITTEN: written,
        }
    zorder = f" ZORDER BY ({', '.join(f'`{column}`' for column in zorder_by)})"
    # The days to Z-order and the newest version they were chosen from, read together.
    commits = _commits(spark, location)
    pending, seen = _written_since_zorder(commits, zorder_by), commits[0].version
    days: set[date] | None = set()
    rewritten = written = 0
    while pending != []:
        if pending is None:
            where, days = "", None
        else:
            where = " WHERE " + " OR ".join(f"({window.predicate(partition_column)})" for window in pending)
            if days is not None:
                days.update(day for window in pending for day in window.days())
        files = _run_optimize(spark, statement + where + zorder)
        rewritten, written = rewritten + files[0], written + files[1]
        # A write that committed after the days were chosen, but before OPTIMIZE read the table, is in the version
        # this pass Z-ordered from, yet its days were not in the WHERE: the next pass would take them as done.
        commits = _commits(spark, location)
        this_pass = next(c for c in commits if c.operation == "OPTIMIZE" and c.zorder_by == list(zorder_by))
        pending = _writes_between(commits, seen, this_pass.read_version or seen)
        seen = commits[0].version
    return {
        MaintenanceMeta.DAYS_OPTIMIZED: "all" if days is None else len(days),
        MaintenanceMeta.FILES_REWRITTEN: rewritten,
        MaintenanceMeta.FILES_WRITTEN: written,
    }


def _maintain_one(
    spark: SparkSession, location: TableLocation, zorder_by: tuple[str, ...], table: TableDeclaration
) -> dict[str, Any]:
    if not table_exists(spark, location):
        return {MaintenanceMeta.SKIPPED: "not built yet"}
    files_before, _ = _detail(spark, location)
    optimized = _optimize(spark, location, zorder_by, table.partition_column)
    retain = table.maintenance.retain_hours
    retry_on_conflict(lambda: spark.sql(f"VACUUM {sql_name(location)} RETAIN {retain} HOURS").collect())
    files_after, bytes_after = _detail(spark, location)
    figures: dict[str, Any] = {
        MaintenanceMeta.FILES_BEFORE: files_before,
        **optimized,
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
    # The quarantine keeps bronze's lines, not the table's columns: it is compacted, not Z-ordered.
    parts = {table.key: table.maintenance.zorder_by, **({table.quarantine_key: ()} if table.has_quarantine else {})}
    for key, zorder_by in parts.items():
        for name, value in _maintain_one(spark, lakehouse.table(key), zorder_by, table).items():
            report.metadata[f"{key.name}/{name}"] = value
    report.metadata[MaintenanceMeta.DURATION_S] = round(time.monotonic() - started, 3)
    return report
