"""Bronze: every landed file kept as received, plus audit columns."""

from medallion_assets.domains.retail.landing import LANDING_SOURCES
from medallion_assets.framework.declare import bronze_tables

BRONZE_TABLES = bronze_tables(LANDING_SOURCES, owner="team:retail-data")
