"""Bronze: every landed file kept as received, plus audit columns."""

from medallion_assets.domains.flights.landing import LANDING_SOURCES
from medallion_assets.framework.declare import TableDeclaration, TableKey

OWNER = "team:data-platform"

BRONZE_TABLES = [
    TableDeclaration(
        key=TableKey("bronze", source.name),
        description=f"{source.description} Landed as received: every column a string, malformed lines kept "
        "whole in `_corrupt_record`, with ingestion time, source file, run id and record hash.",
        owner=OWNER,
        source=source,
    )
    for source in LANDING_SOURCES
]
