"""Business domains: one folder each, one module per layer."""

from medallion_assets.domains import flights
from medallion_assets.framework.table import TableDeclaration, TableKey

DOMAINS = {"flights": flights}
CATALOG: dict[TableKey, TableDeclaration] = {table.key: table for domain in DOMAINS.values() for table in domain.TABLES}
