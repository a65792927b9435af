"""The asset checks every table derives from its declaration: names and meanings, in one place.

A check name crosses files and processes: the framework reports it, Dagster declares it (and plans it per
partition), the Databricks task sends it over Pipes, and an operator names it to accept a failure.
"""

from __future__ import annotations

LANDING_RECONCILIATION = "landing_reconciliation"
LANDING_DELIVERED = "landing_delivered"
CONTRACT = "contract"
SOURCE_SCHEMA = "source_schema"
RECONCILIATION = "reconciliation"
QUARANTINE_RATE = "quarantine_rate"
FOREIGN_KEY_PREFIX = "fk_"

DESCRIPTIONS = {
    LANDING_RECONCILIATION: "Every landed line is a bronze row: the lines Python counts in each file equal the "
    "rows Spark read and committed.",
    LANDING_DELIVERED: "Every day of the window delivered at least one data line; an empty delivery is never a "
    "quiet empty day.",
    CONTRACT: "Pandera contract: column types, nullability and value domains.",
    SOURCE_SCHEMA: "Landed files carry the expected columns; extra columns warn as drift.",
    RECONCILIATION: "Nothing lost: rows in = rows out + quarantined + duplicates dropped + superseded by a later "
    "delivery (silver); the declared measure of the output equals that of the input (gold).",
    QUARANTINE_RATE: "Each day keeps rows, and quarantines no more than the table's threshold of them.",
}


def foreign_key_check(fk_name: str) -> str:
    return FOREIGN_KEY_PREFIX + fk_name


def is_check_name(name: str) -> bool:
    return name in DESCRIPTIONS or name.startswith(FOREIGN_KEY_PREFIX)
