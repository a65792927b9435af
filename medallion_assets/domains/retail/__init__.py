"""The retail domain (TPC-H): orders and line items landed daily, reference snapshots, a sales star schema."""

from datetime import date

from medallion_assets.domains.retail.bronze import BRONZE_TABLES
from medallion_assets.domains.retail.gold import GOLD_TABLES
from medallion_assets.domains.retail.landing import LANDING_SOURCES, stage
from medallion_assets.domains.retail.silver import SILVER_TABLES
from medallion_assets.framework.declare import PartitionWindow

# TPC-H's order dates run from 1992-01-01 to 1998-08-02 (its specification, clause 4.2.3): one partition per day.
PARTITION_DAYS = PartitionWindow(date(1992, 1, 1), date(1998, 8, 3))
TABLES = [*BRONZE_TABLES, *SILVER_TABLES, *GOLD_TABLES]

__all__ = ["LANDING_SOURCES", "PARTITION_DAYS", "TABLES", "stage"]
