"""Business domains: one folder each, one module per layer."""

from medallion_assets.domains import flights
from medallion_assets.framework.declare import TableDeclaration, TableKey

DOMAINS = {"flights": flights}
# What `medallion stage` and `medallion run` work on without --domain.
DEFAULT_DOMAIN = "flights"
CATALOG: dict[TableKey, TableDeclaration] = {table.key: table for domain in DOMAINS.values() for table in domain.TABLES}
# The domain whose bundle job runs a table's task.
DOMAIN_OF: dict[TableKey, str] = {table.key: name for name, domain in DOMAINS.items() for table in domain.TABLES}
