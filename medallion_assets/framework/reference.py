"""What every reference snapshot table declares alike: its SCD2 columns, and a cleaning projection."""

from __future__ import annotations

from collections.abc import Mapping

import pyspark.sql.types as T
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from medallion_assets.framework.contract import Contract, Field
from medallion_assets.framework.table import SOURCE_STRUCT, TransformContext, TransformFn


class Scd2Columns(Contract):
    """The columns the framework adds to a table declared with `Scd2`, for its contract to inherit."""

    row_hash: T.StringType() = Field(str_length={"min_value": 64, "max_value": 64})
    valid_from: T.DateType() = Field()
    valid_to: T.DateType() = Field(nullable=True)
    is_current: T.BooleanType() = Field()


def projection(columns: Mapping[str, str]) -> TransformFn:
    """A transform of a table's one input: each output column is Spark SQL over the input's columns."""

    def transform(ctx: TransformContext) -> DataFrame:
        source = next(iter(ctx.inputs.values()))
        return source.select(
            *[F.expr(expression).alias(name) for name, expression in columns.items()],
            ctx.table.partition_column,
            SOURCE_STRUCT,
        )

    return transform
