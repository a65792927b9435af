"""The declaration API: everything a domain needs to declare its tables, and nothing of the engine.

A domain module imports from here only, so a table is a declaration (schema, rules, transform) and the
framework decides how it is built, checked and deployed.
"""

from medallion_assets.framework.calendar import CalendarDay, calendar_days
from medallion_assets.framework.contract import Contract, Field
from medallion_assets.framework.errors import TableBuildError
from medallion_assets.framework.local_frames import literal_frame
from medallion_assets.framework.partitions import PartitionWindow
from medallion_assets.framework.reference import Scd2Columns, projection
from medallion_assets.framework.staging import StagingTally
from medallion_assets.framework.table import (
    DAILY_FRESHNESS,
    Conservation,
    ForeignKey,
    Freshness,
    LandingSource,
    Maintenance,
    Rule,
    Scd2,
    TableDeclaration,
    TableKey,
    TransformContext,
    TransformFn,
    Upstream,
    bronze_tables,
)

__all__ = [
    "DAILY_FRESHNESS",
    "CalendarDay",
    "Conservation",
    "Contract",
    "Field",
    "ForeignKey",
    "Freshness",
    "LandingSource",
    "Maintenance",
    "PartitionWindow",
    "Rule",
    "Scd2",
    "Scd2Columns",
    "StagingTally",
    "TableBuildError",
    "TableDeclaration",
    "TableKey",
    "TransformContext",
    "TransformFn",
    "Upstream",
    "bronze_tables",
    "calendar_days",
    "literal_frame",
    "projection",
]
