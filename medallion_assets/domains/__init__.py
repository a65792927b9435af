"""Business domains: one folder each, one module per layer, found by looking rather than by a list.

A domain is a subpackage that exports `TABLES`, `LANDING_SOURCES`, `PARTITION_DAYS` and `stage`; adding its
folder is all it takes for the definitions, the jobs, the sensors and the bundle to carry it.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from medallion_assets.framework.declare import TableDeclaration, TableKey

DOMAIN_EXPORTS = ("TABLES", "LANDING_SOURCES", "PARTITION_DAYS", "stage")


def _discover() -> dict[str, ModuleType]:
    found: dict[str, ModuleType] = {}
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not module.ispkg or module.name.startswith("_"):
            continue
        domain = importlib.import_module(f"{__name__}.{module.name}")
        missing = [name for name in DOMAIN_EXPORTS if not hasattr(domain, name)]
        if missing:
            raise TypeError(f"domain {module.name!r} does not export {', '.join(missing)}")
        found[module.name] = domain
    return found


def _catalog(domains: dict[str, ModuleType]) -> tuple[dict[TableKey, TableDeclaration], dict[TableKey, str]]:
    """Every table by key: keys name Delta tables and Dagster assets, so two domains may not share one."""
    catalog: dict[TableKey, TableDeclaration] = {}
    domain_of: dict[TableKey, str] = {}
    sources: dict[str, str] = {}
    for name, domain in domains.items():
        for table in domain.TABLES:
            if table.key in catalog:
                raise ValueError(f"domains {domain_of[table.key]!r} and {name!r} both declare {table.key}")
            catalog[table.key], domain_of[table.key] = table, name
        for source in domain.LANDING_SOURCES:
            # Landed files live at <landing root>/<source>/<day>/: a source name is one folder for one domain.
            if sources.setdefault(source.name, name) != name:
                raise ValueError(f"domains {sources[source.name]!r} and {name!r} both land a source {source.name!r}")
    return catalog, domain_of


DOMAINS = _discover()
# What `medallion stage` and `medallion run` work on without --domain.
DEFAULT_DOMAIN = "flights"
CATALOG, DOMAIN_OF = _catalog(DOMAINS)
