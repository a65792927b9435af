"""SCD Type 2 history from daily reference snapshots.

Partition D holds every version current on D (`is_current`) plus every version that ended on D
(`valid_to = D`). The union over all partitions of the closed rows and the latest current rows is
the full history, and building day D needs only the snapshots of the window and the state of the
day before it, so its cost does not grow with the table's age.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from medallion_assets.framework.partitions import PartitionWindow

SCD2_COLUMNS = ("row_hash", "valid_from", "valid_to", "is_current")


def build_scd2(
    snapshots: DataFrame,
    previous_state: DataFrame | None,
    key: tuple[str, ...],
    partition_column: str,
    window: PartitionWindow,
) -> DataFrame:
    attributes = [c for c in snapshots.columns if c != partition_column and c not in SCD2_COLUMNS]
    hashed = snapshots.select(
        *attributes,
        F.col(partition_column),
        F.sha2(F.to_json(F.struct(*attributes)), 256).alias("row_hash"),
        F.lit(None).cast("date").alias("_known_valid_from"),
    )
    if previous_state is not None:
        carried = previous_state.where("is_current").select(
            *attributes,
            F.col(partition_column),
            F.col("row_hash"),
            F.col("valid_from").alias("_known_valid_from"),
        )
        hashed = hashed.unionByName(carried)

    by_key = Window.partitionBy(*key).orderBy(partition_column)
    day = F.col(partition_column)
    starts_version = (
        F.lag("row_hash").over(by_key).isNull()
        | (F.lag("row_hash").over(by_key) != F.col("row_hash"))
        | (F.datediff(day, F.lag(partition_column).over(by_key)) != 1)
    )
    next_day = F.lead(partition_column).over(by_key)
    ends_next_day = (
        next_day.isNull() | (F.datediff(next_day, day) != 1) | (F.lead("row_hash").over(by_key) != F.col("row_hash"))
    )
    versioned = (
        hashed.withColumn(
            "_version_start",
            F.coalesce(F.col("_known_valid_from"), F.when(starts_version, day)),
        )
        .withColumn(
            "valid_from",
            F.last("_version_start", ignorenulls=True).over(by_key.rowsBetween(Window.unboundedPreceding, 0)),
        )
        .withColumn("_ends_next_day", ends_next_day)
    )

    current = versioned.where(window.predicate(partition_column)).select(
        *attributes,
        "row_hash",
        "valid_from",
        F.lit(None).cast("date").alias("valid_to"),
        F.lit(True).alias("is_current"),
        day.alias(partition_column),
    )
    # A version seen on day d but not (unchanged) on d+1 closed on d+1; only closures inside the
    # window are written, and only on days that delivered a snapshot at all.
    delivered_days = snapshots.select(F.col(partition_column).alias("_closing_day")).distinct()
    closed = (
        versioned.where("_ends_next_day")
        .withColumn("_closing_day", F.date_add(day, 1))
        .join(delivered_days, "_closing_day")
        .where(window.predicate("_closing_day"))
        .select(
            *attributes,
            "row_hash",
            "valid_from",
            F.col("_closing_day").alias("valid_to"),
            F.lit(False).alias("is_current"),
            F.col("_closing_day").alias(partition_column),
        )
    )
    return current.unionByName(closed)
