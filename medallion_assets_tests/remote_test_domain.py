"""A test-only domain with a rule of severity 'fail', declared as any domain is.

`register()` adds the domain to the table catalog, as a wheel built with the domain would have it: the
emulated cluster's driver calls it before its tasks (`EMULATED_DRIVER_PRELOAD`). The test process keeps its
catalog as it is and builds the domain's assets from `TABLES` directly.
"""

from __future__ import annotations

import sys

import pyspark.sql.types as T

from medallion_assets import domains
from medallion_assets.framework.declare import (
    Contract,
    Field,
    LandingSource,
    Rule,
    TableDeclaration,
    TableKey,
    Upstream,
)

DOMAIN = "meters"
SOURCE = LandingSource("meter_readings", ("meter", "kwh"), "smart-meter readings, one file per day")


class MeterReadings(Contract):
    meter: T.StringType() = Field(str_matches=r"^M[0-9]+$")
    kwh: T.IntegerType() = Field(nullable=True)


TABLES = [
    TableDeclaration(
        key=TableKey("bronze", "meter_readings"),
        description="Meter readings as landed.",
        owner="team:test",
        source=SOURCE,
    ),
    TableDeclaration(
        key=TableKey("silver", "meter_readings"),
        description="Typed meter readings. A negative reading means a broken meter: stop.",
        owner="team:test",
        inputs={"readings": Upstream(TableKey("bronze", "meter_readings"))},
        casts={"kwh": "INT"},
        transform=lambda ctx: ctx.input("readings"),
        contract=MeterReadings,
        rules=[Rule("kwh_not_negative", "kwh IS NULL OR kwh >= 0", "fail", "a meter never runs backwards")],
    ),
]


def register() -> None:
    domains.DOMAINS[DOMAIN] = sys.modules[__name__]  # type: ignore[assignment]
    for table in TABLES:
        domains.CATALOG[table.key] = table
        domains.DOMAIN_OF[table.key] = DOMAIN
