"""Delta reads and writes, always scoped to a partition window."""

from __future__ import annotations

import json
import random
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from delta.exceptions import (
    ConcurrentAppendException,
    ConcurrentDeleteDeleteException,
    ConcurrentDeleteReadException,
    ConcurrentTransactionException,
    ConcurrentWriteException,
    MetadataChangedException,
    ProtocolChangedException,
)
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession

from medallion_assets.framework.lakehouse import TableLocation
from medallion_assets.framework.partitions import PartitionWindow

# Optimistic-concurrency conflicts: another writer committed first. Replacing the same window again is
# idempotent, so retrying the commit is always safe.
COMMIT_CONFLICTS = (
    ConcurrentAppendException,
    ConcurrentDeleteDeleteException,
    ConcurrentDeleteReadException,
    ConcurrentTransactionException,
    ConcurrentWriteException,
    MetadataChangedException,
    ProtocolChangedException,
)
COMMIT_ATTEMPTS = 5


def table_exists(spark: SparkSession, location: TableLocation) -> bool:
    if location.is_path:
        return DeltaTable.isDeltaTable(spark, location.identifier)
    return spark.catalog.tableExists(location.identifier.replace("`", ""))


def _delta_table(spark: SparkSession, location: TableLocation) -> DeltaTable:
    if location.is_path:
        return DeltaTable.forPath(spark, location.identifier)
    return DeltaTable.forName(spark, location.identifier)


def read_table(spark: SparkSession, location: TableLocation) -> DataFrame:
    if location.is_path:
        return spark.read.format("delta").load(location.identifier)
    return spark.read.table(location.identifier)


def read_window(
    spark: SparkSession, location: TableLocation, window: PartitionWindow, partition_column: str
) -> DataFrame | None:
    """The rows of `window`, or None when the table has never been written."""
    if not table_exists(spark, location):
        return None
    return read_table(spark, location).where(window.predicate(partition_column))


@dataclass(frozen=True)
class Commit:
    """A write's outcome: the table version it left and the rows the window holds after it."""

    version: int
    window_rows: int


# A commit found this many versions behind the newest is no longer worth scanning the log for.
COMMIT_LOOKBACK = 50


def write_window(
    df: DataFrame,
    location: TableLocation,
    window: PartitionWindow,
    partition_column: str,
    *,
    evolve_schema: bool = False,
) -> Commit:
    """Atomically replace exactly the rows of `window` and return what was committed.

    replaceWhere makes a re-run of the same window idempotent and leaves every other day untouched;
    Delta rejects the commit if any written row falls outside the window. Each write tags its commit
    with a unique token, so the commit is found again even after other writers committed on top of it,
    and its metrics give the window's row count without another scan.
    """
    token = f"medallion_assets write {uuid.uuid4().hex}"
    writer = (
        df.write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", window.predicate(partition_column))
        .option("userMetadata", token)
        .partitionBy(partition_column)
    )
    if evolve_schema:
        writer = writer.option("mergeSchema", "true")
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        try:
            if location.is_path:
                writer.save(location.identifier)
            else:
                writer.saveAsTable(location.identifier)
            break
        except COMMIT_CONFLICTS:
            if attempt == COMMIT_ATTEMPTS:
                raise
            time.sleep(random.uniform(0.5, 1.5) * attempt)
    spark = df.sparkSession
    version, rows = _local_log_commit(location, token) or _history_commit(spark, location, token)
    if rows is None:
        # Delta records no commit for a write that changes nothing (no rows into an empty window), and older
        # commits may lack the metric: count the window instead.
        stored = read_window(spark, location, window, partition_column)
        rows = stored.count() if stored is not None else 0
    return Commit(version, rows)


def _committed_rows(commit_info: dict[str, Any]) -> int | None:
    metrics = commit_info.get("operationMetrics") or {}
    if "numOutputRows" in metrics:
        # Rows copied out of a rewritten file lie outside the replaced window.
        return int(metrics["numOutputRows"]) - int(metrics.get("numCopiedRows", 0))
    return 0 if metrics.get("numFiles") == "0" else None


def _local_log_commit(location: TableLocation, token: str) -> tuple[int, int | None] | None:
    """Find the tagged commit straight in a table's log on this machine's filesystem: no Spark job.

    Returns the newest version with no row count when the tag is not there: the write committed nothing.
    """
    log = Path(location.identifier.removeprefix("file:")) / "_delta_log" if location.is_path else None
    if log is None or not log.is_dir():
        return None
    versions = sorted((int(f.stem) for f in log.glob("*.json") if f.stem.isdigit()), reverse=True)
    if not versions:
        return None
    for version in versions[:COMMIT_LOOKBACK]:
        actions = (json.loads(line) for line in (log / f"{version:020d}.json").read_text().splitlines() if line)
        commit_info = next((action["commitInfo"] for action in actions if "commitInfo" in action), {})
        if commit_info.get("userMetadata") == token:
            return version, _committed_rows(commit_info)
    return versions[0], None


def _history_commit(spark: SparkSession, location: TableLocation, token: str) -> tuple[int, int | None]:
    history = (
        _delta_table(spark, location).history(COMMIT_LOOKBACK).select("version", "userMetadata", "operationMetrics")
    )
    rows = history.collect()
    for row in rows:
        if row["userMetadata"] == token:
            return int(row["version"]), _committed_rows({"operationMetrics": row["operationMetrics"]})
    return max(int(row["version"]) for row in rows), None
