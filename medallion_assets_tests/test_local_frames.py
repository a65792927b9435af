"""Literal rows become DataFrames that the JVM plans alone, with the declared columns and types."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pyspark.sql.types as T

from medallion_assets.framework import bronze_ingest
from medallion_assets.framework.local_frames import empty_frame, literal_frame
from medallion_assets.framework.table import LandingSource

SCHEMA = T.StructType(
    [T.StructField("code", T.StringType()), T.StructField("day", T.DateType()), T.StructField("n", T.LongType())]
)


def physical_plan(frame) -> str:
    return frame._jdf.queryExecution().executedPlan().toString()


def test_literal_rows_keep_their_values_and_declared_types(spark) -> None:
    rows = [("PSE", date(2013, 1, 1), 3), ("SJU", None, None)]
    frame = literal_frame(spark, rows, SCHEMA)
    assert [field.dataType for field in frame.schema.fields] == [field.dataType for field in SCHEMA.fields]
    assert frame.columns == ["code", "day", "n"]
    assert sorted(tuple(row) for row in frame.collect()) == rows


def test_no_rows_give_an_empty_frame_of_the_schema(spark) -> None:
    for frame in (literal_frame(spark, [], SCHEMA), empty_frame(spark, SCHEMA)):
        assert frame.columns == ["code", "day", "n"]
        assert [field.dataType for field in frame.schema.fields] == [field.dataType for field in SCHEMA.fields]
        assert frame.count() == 0


def test_no_python_rows_reach_the_plan(spark) -> None:
    # What `spark.createDataFrame(rows)` plans on classic Spark: a scan of a parallelized Python list, whose
    # tasks run in Python workers.
    assert "ExistingRDD" in physical_plan(spark.createDataFrame([("a",)], "code string"))
    for frame in (literal_frame(spark, [("PSE", date(2013, 1, 1), 3)], SCHEMA), empty_frame(spark, SCHEMA)):
        assert "ExistingRDD" not in physical_plan(frame)


def test_a_bronze_build_starts_from_a_frame_without_python_rows(spark) -> None:
    source = LandingSource("gates", ("airport", "gate"), "gates per airport")
    nothing_landed = bronze_ingest.ingest(
        spark, source, [], run_id="test", ingested_at=datetime.now(UTC), partition_column="partition_date"
    )
    assert nothing_landed.count() == 0
    assert "ExistingRDD" not in physical_plan(nothing_landed)
