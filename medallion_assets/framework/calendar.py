"""The calendar dimension every star schema shares: one row per day of the window, keyed yyyymmdd."""

from __future__ import annotations

import pyspark.sql.types as T
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from medallion_assets.framework.contract import Contract, Field
from medallion_assets.framework.local_frames import literal_frame
from medallion_assets.framework.table import TransformContext


class CalendarDay(Contract):
    date_key: T.IntegerType() = Field(ge=19000101, le=21001231)
    full_date: T.DateType() = Field()
    year: T.IntegerType() = Field()
    quarter: T.IntegerType() = Field(in_range={"min_value": 1, "max_value": 4})
    month: T.IntegerType() = Field(in_range={"min_value": 1, "max_value": 12})
    day_of_month: T.IntegerType() = Field(in_range={"min_value": 1, "max_value": 31})
    day_of_week: T.IntegerType() = Field(in_range={"min_value": 1, "max_value": 7})
    day_name: T.StringType() = Field()
    month_name: T.StringType() = Field()
    is_weekend: T.BooleanType() = Field()


def calendar_days(ctx: TransformContext) -> DataFrame:
    """The transform of a calendar table: it reads nothing, and conserves the days of its window."""
    days = literal_frame(
        ctx.spark, [(day,) for day in ctx.window.days()], T.StructType([T.StructField("full_date", T.DateType())])
    )
    return days.select(
        F.expr("CAST(date_format(full_date, 'yyyyMMdd') AS INT)").alias("date_key"),
        "full_date",
        F.year("full_date").alias("year"),
        F.quarter("full_date").alias("quarter"),
        F.month("full_date").alias("month"),
        F.dayofmonth("full_date").alias("day_of_month"),
        F.dayofweek("full_date").alias("day_of_week"),
        F.date_format("full_date", "EEEE").alias("day_name"),
        F.date_format("full_date", "MMMM").alias("month_name"),
        F.dayofweek("full_date").isin(1, 7).alias("is_weekend"),
        F.col("full_date").alias(ctx.table.partition_column),
    )
