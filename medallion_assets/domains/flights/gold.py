"""Gold: a star schema of flights with conformed dimensions, plus carrier KPIs."""

from __future__ import annotations

import pyspark.sql.types as T
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from medallion_assets.framework.declare import (
    CalendarDay,
    Conservation,
    Contract,
    Field,
    ForeignKey,
    Maintenance,
    TableDeclaration,
    TableKey,
    TransformContext,
    Upstream,
    calendar_days,
)

OWNER = "team:analytics-engineering"
ON_TIME_THRESHOLD_MIN = 15
UNKNOWN_TAILNUM = "UNKNOWN"


def _dim(name: str) -> TableKey:
    return TableKey("gold", name)


class DimCarrier(Contract):
    carrier_key: T.LongType() = Field()
    carrier: T.StringType() = Field(str_matches=r"^[A-Z0-9]{2}$")
    carrier_name: T.StringType() = Field()
    valid_from: T.DateType() = Field()


def transform_dim_carrier(ctx: TransformContext) -> DataFrame:
    return (
        ctx.input("airlines")
        .where("is_current")
        .select(
            F.xxhash64("carrier", "valid_from").alias("carrier_key"),
            "carrier",
            F.col("name").alias("carrier_name"),
            "valid_from",
            "partition_date",
        )
    )


class DimAirport(Contract):
    airport_key: T.LongType() = Field()
    faa: T.StringType() = Field(str_matches=r"^[A-Z0-9]{3,4}$")
    airport_name: T.StringType() = Field()
    lat: T.DoubleType() = Field(nullable=True)
    lon: T.DoubleType() = Field(nullable=True)
    tzone: T.StringType() = Field(nullable=True)
    is_inferred: T.BooleanType() = Field()


def _referenced_codes(flights: DataFrame, *columns: str) -> DataFrame:
    codes = [flights.select(F.col(c).alias("code"), "partition_date") for c in columns]
    union = codes[0]
    for frame in codes[1:]:
        union = union.unionByName(frame)
    return union.where("code IS NOT NULL").distinct()


def with_inferred_members(
    current: DataFrame,
    referenced: DataFrame,
    code_column: str,
    key_column: str,
    defaults: dict[str, Column] | None = None,
) -> DataFrame:
    """Add a Kimball inferred member for every code that facts use but the reference lacks.

    The member has its own surrogate key and NULL attributes (or `defaults`), so every fact row keeps a
    valid foreign key and the dimension says which rows it had to infer.
    """
    missing = referenced.join(
        current.select(F.col(code_column).alias("code"), "partition_date"), ["code", "partition_date"], "left_anti"
    )
    fixed = {
        key_column: F.xxhash64("code", F.lit("inferred")),
        code_column: F.col("code"),
        "is_inferred": F.lit(True),
        "partition_date": F.col("partition_date"),
        **(defaults or {}),
    }
    inferred = missing.select(
        *[fixed.get(field.name, F.lit(None).cast(field.dataType)).alias(field.name) for field in current.schema]
    )
    return current.unionByName(inferred)


def transform_dim_airport(ctx: TransformContext) -> DataFrame:
    current = (
        ctx.input("airports")
        .where("is_current")
        .select(
            F.xxhash64("faa", "valid_from").alias("airport_key"),
            "faa",
            F.col("name").alias("airport_name"),
            "lat",
            "lon",
            "tzone",
            F.lit(False).alias("is_inferred"),
            "partition_date",
        )
    )
    referenced = _referenced_codes(ctx.input("flights"), "origin", "dest")
    return with_inferred_members(current, referenced, "faa", "airport_key", {"airport_name": F.lit("Unknown airport")})


class DimAircraft(Contract):
    aircraft_key: T.LongType() = Field()
    tailnum: T.StringType() = Field()
    manufacturer: T.StringType() = Field(nullable=True)
    model: T.StringType() = Field(nullable=True)
    year_built: T.IntegerType() = Field(nullable=True)
    seats: T.IntegerType() = Field(nullable=True)
    engines: T.IntegerType() = Field(nullable=True)
    is_inferred: T.BooleanType() = Field()


def transform_dim_aircraft(ctx: TransformContext) -> DataFrame:
    current = (
        ctx.input("planes")
        .where("is_current")
        .select(
            F.xxhash64("tailnum", "valid_from").alias("aircraft_key"),
            "tailnum",
            "manufacturer",
            "model",
            "year_built",
            "seats",
            "engines",
            F.lit(False).alias("is_inferred"),
            "partition_date",
        )
    )
    referenced = _referenced_codes(
        ctx.input("flights").withColumn("tailnum", F.coalesce("tailnum", F.lit(UNKNOWN_TAILNUM))), "tailnum"
    )
    return with_inferred_members(current, referenced, "tailnum", "aircraft_key")


class FactFlights(Contract):
    flight_id: T.LongType() = Field()
    date_key: T.IntegerType() = Field()
    carrier_key: T.LongType() = Field()
    origin_airport_key: T.LongType() = Field()
    dest_airport_key: T.LongType() = Field()
    aircraft_key: T.LongType() = Field()
    flight_number: T.IntegerType() = Field(ge=1)
    sched_dep_utc: T.TimestampType() = Field()
    sched_dep_local: T.TimestampNTZType() = Field()
    dep_delay_min: T.IntegerType() = Field(nullable=True)
    arr_delay_min: T.IntegerType() = Field(nullable=True)
    air_time_min: T.IntegerType() = Field(nullable=True, ge=1)
    distance_mi: T.IntegerType() = Field(ge=1)
    is_cancelled: T.BooleanType() = Field()
    is_diverted: T.BooleanType() = Field()
    is_on_time: T.BooleanType() = Field()
    dep_hour_temp_f: T.DoubleType() = Field(nullable=True)
    dep_hour_wind_speed_mph: T.DoubleType() = Field(nullable=True)
    dep_hour_precip_in: T.DoubleType() = Field(nullable=True)
    dep_hour_visib_mi: T.DoubleType() = Field(nullable=True)


def _keys(frame: DataFrame, code: str, key: str, alias_code: str, alias_key: str) -> DataFrame:
    return frame.select(F.col(code).alias(alias_code), F.col(key).alias(alias_key), "partition_date")


def transform_fact_flights(ctx: TransformContext) -> DataFrame:
    flights = ctx.input("flights").withColumn("_aircraft", F.coalesce("tailnum", F.lit(UNKNOWN_TAILNUM)))
    weather = ctx.input("weather").select(
        "origin",
        "time_hour",
        "partition_date",
        F.col("temp_f").alias("dep_hour_temp_f"),
        F.col("wind_speed_mph").alias("dep_hour_wind_speed_mph"),
        F.col("precip_in").alias("dep_hour_precip_in"),
        F.col("visib_mi").alias("dep_hour_visib_mi"),
    )
    airports = ctx.input("airports")
    # Every dimension holds one row per code per day, so these left joins never add or drop a flight.
    joined = (
        flights.join(
            _keys(ctx.input("dates"), "full_date", "date_key", "flight_date", "date_key"),
            ["flight_date", "partition_date"],
            "left",
        )
        .join(
            _keys(ctx.input("carriers"), "carrier", "carrier_key", "carrier", "carrier_key"),
            ["carrier", "partition_date"],
            "left",
        )
        .join(
            _keys(airports, "faa", "airport_key", "origin", "origin_airport_key"), ["origin", "partition_date"], "left"
        )
        .join(_keys(airports, "faa", "airport_key", "dest", "dest_airport_key"), ["dest", "partition_date"], "left")
        .join(
            _keys(ctx.input("aircraft"), "tailnum", "aircraft_key", "_aircraft", "aircraft_key"),
            ["_aircraft", "partition_date"],
            "left",
        )
        .join(weather, ["origin", "time_hour", "partition_date"], "left")
    )
    return joined.select(
        F.xxhash64("flight_date", "carrier", "flight", "origin").alias("flight_id"),
        "date_key",
        "carrier_key",
        "origin_airport_key",
        "dest_airport_key",
        "aircraft_key",
        F.col("flight").alias("flight_number"),
        "sched_dep_utc",
        "sched_dep_local",
        F.col("dep_delay").alias("dep_delay_min"),
        F.col("arr_delay").alias("arr_delay_min"),
        F.col("air_time").alias("air_time_min"),
        F.col("distance").alias("distance_mi"),
        "is_cancelled",
        "is_diverted",
        F.coalesce(F.col("arr_delay") < ON_TIME_THRESHOLD_MIN, F.lit(False)).alias("is_on_time"),
        "dep_hour_temp_f",
        "dep_hour_wind_speed_mph",
        "dep_hour_precip_in",
        "dep_hour_visib_mi",
        "partition_date",
    )


class CarrierDailyPerformance(Contract):
    flight_date: T.DateType() = Field()
    carrier: T.StringType() = Field(str_matches=r"^[A-Z0-9]{2}$")
    scheduled_flights: T.LongType() = Field(ge=1)
    cancelled_flights: T.LongType() = Field(ge=0)
    on_time_arrivals: T.LongType() = Field(ge=0)
    on_time_rate: T.DoubleType() = Field(in_range={"min_value": 0.0, "max_value": 1.0})
    avg_dep_delay_min: T.DoubleType() = Field(nullable=True)
    avg_arr_delay_min: T.DoubleType() = Field(nullable=True)


def transform_carrier_daily_performance(ctx: TransformContext) -> DataFrame:
    return (
        ctx.input("flights")
        .groupBy(F.col("flight_date"), "carrier")
        .agg(
            F.count(F.lit(1)).alias("scheduled_flights"),
            F.count_if("is_cancelled").alias("cancelled_flights"),
            F.count_if(F.col("arr_delay") < ON_TIME_THRESHOLD_MIN).alias("on_time_arrivals"),
            F.avg("dep_delay").alias("avg_dep_delay_min"),
            F.avg("arr_delay").alias("avg_arr_delay_min"),
        )
        .withColumn("on_time_rate", F.col("on_time_arrivals") / F.col("scheduled_flights"))
    )


SILVER_FLIGHTS = Upstream(TableKey("silver", "flights"))

GOLD_TABLES = [
    TableDeclaration(
        key=_dim("dim_date"),
        description="Calendar dimension, one row per day, keyed yyyymmdd; a day is built once its flights land.",
        owner=OWNER,
        # Built after the day's flights land, so automation builds each day of the calendar as it is needed.
        built_after=(TableKey("bronze", "flights"),),
        transform=calendar_days,
        contract=CalendarDay,
        conservation=Conservation(None),
    ),
    TableDeclaration(
        key=_dim("dim_carrier"),
        description="Carrier dimension: the SCD2 version of each carrier current on the day.",
        owner=OWNER,
        inputs={"airlines": Upstream(TableKey("silver", "airlines"))},
        transform=transform_dim_carrier,
        contract=DimCarrier,
        conservation=Conservation("airlines", input_measure="count_if(is_current)"),
    ),
    TableDeclaration(
        key=_dim("dim_airport"),
        description="Airport dimension (origin and destination roles), with inferred members for codes "
        "that flights use but the FAA list lacks.",
        owner=OWNER,
        inputs={"airports": Upstream(TableKey("silver", "airports")), "flights": SILVER_FLIGHTS},
        transform=transform_dim_airport,
        contract=DimAirport,
        conservation=Conservation("airports", "count_if(is_current)", "count_if(NOT is_inferred)"),
    ),
    TableDeclaration(
        key=_dim("dim_aircraft"),
        description="Aircraft dimension, with inferred members for unregistered tail numbers and one "
        f"'{UNKNOWN_TAILNUM}' member for flights without a tail number.",
        owner=OWNER,
        inputs={"planes": Upstream(TableKey("silver", "planes")), "flights": SILVER_FLIGHTS},
        transform=transform_dim_aircraft,
        contract=DimAircraft,
        conservation=Conservation("planes", "count_if(is_current)", "count_if(NOT is_inferred)"),
    ),
    TableDeclaration(
        key=_dim("fact_flights"),
        description="One row per silver flight: keys to every dimension, delays, air time, distance, "
        "on-time flag and the weather at the scheduled departure hour.",
        owner=OWNER,
        inputs={
            "flights": SILVER_FLIGHTS,
            "weather": Upstream(TableKey("silver", "weather")),
            "dates": Upstream(_dim("dim_date")),
            "carriers": Upstream(_dim("dim_carrier")),
            "airports": Upstream(_dim("dim_airport")),
            "aircraft": Upstream(_dim("dim_aircraft")),
        },
        transform=transform_fact_flights,
        contract=FactFlights,
        maintenance=Maintenance(zorder_by=("carrier_key", "origin_airport_key")),
        conservation=Conservation("flights"),
        foreign_keys=[
            ForeignKey("dim_date", "date_key", _dim("dim_date"), "date_key"),
            ForeignKey("dim_carrier", "carrier_key", _dim("dim_carrier"), "carrier_key"),
            ForeignKey("dim_airport_origin", "origin_airport_key", _dim("dim_airport"), "airport_key"),
            ForeignKey("dim_airport_dest", "dest_airport_key", _dim("dim_airport"), "airport_key"),
            ForeignKey("dim_aircraft", "aircraft_key", _dim("dim_aircraft"), "aircraft_key"),
        ],
    ),
    TableDeclaration(
        key=_dim("carrier_daily_performance"),
        description="Daily on-time KPIs per carrier: scheduled, cancelled and on-time (arrival delay under "
        f"{ON_TIME_THRESHOLD_MIN} min) flights, on-time rate and mean delays.",
        owner=OWNER,
        inputs={"flights": SILVER_FLIGHTS},
        transform=transform_carrier_daily_performance,
        contract=CarrierDailyPerformance,
        conservation=Conservation("flights", output_measure="sum(scheduled_flights)"),
        partition_column="flight_date",
    ),
]
