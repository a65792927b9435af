"""Delta reads and writes, always scoped to a partition window."""

from __future__ import annotations

import random
import time

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


def write_window(
    df: DataFrame,
    location: TableLocation,
    window: PartitionWindow,
    partition_column: str,
    *,
    evolve_schema: bool = False,
) -> int:
    """Atomically replace exactly the rows of `window` and return the new Delta version.

    replaceWhere makes a re-run of the same window idempotent and leaves every other day untouched;
    Delta rejects the commit if any written row falls outside the window.
    """
    writer = (
        df.write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", window.predicate(partition_column))
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
    return current_version(df.sparkSession, location)


def current_version(spark: SparkSession, location: TableLocation) -> int:
    return int(_delta_table(spark, location).history(1).select("version").first()[0])
