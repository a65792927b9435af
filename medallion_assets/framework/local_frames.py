"""Small DataFrames of literal rows, planned in the JVM alone.

On classic Spark, `spark.createDataFrame(rows)` parallelizes a Python list: every job whose plan holds that frame
runs Python workers for its partitions, even empty ones, to hand the pickled rows to the JVM. A bronze build's
empty starting frame was in every one of its jobs. A range of one row exploded into literal structs is planned by
the JVM alone, classic or Spark Connect alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pyspark.sql.types as T
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F


def empty_frame(spark: SparkSession, schema: T.StructType) -> DataFrame:
    """No rows, with `schema`'s columns and types (every column nullable)."""
    return spark.range(0).select(*[F.lit(None).cast(field.dataType).alias(field.name) for field in schema.fields])


def literal_frame(spark: SparkSession, rows: Iterable[Sequence[object]], schema: T.StructType) -> DataFrame:
    """`rows`, each a value per column of `schema`, as a DataFrame."""
    structs = [
        F.struct(
            *[
                F.lit(value).cast(field.dataType).alias(field.name)
                for value, field in zip(row, schema.fields, strict=True)
            ]
        )
        for row in rows
    ]
    if not structs:
        return empty_frame(spark, schema)
    return spark.range(1).select(F.inline(F.array(*structs)))
