"""Build one table for one partition window: read, transform, judge, then commit only what passed.

This is the single code path behind both compute targets: the local resource calls it in-process
and the Databricks runtime entry point calls it on the cluster.

Every check is judged on the rows about to be written, before the commit. A window that fails a blocking
check is not committed, so no reader ever sees a table version that failed one; the table keeps its previous
version of those days. An operator may accept a failed check by name (`accepted_checks`), and the acceptance
is recorded in the check's metadata and in the commit.
"""

from __future__ import annotations

import time
from collections.abc import Collection

from pyspark.sql import SparkSession

from medallion_assets.framework import checks
from medallion_assets.framework.bronze_build import build_bronze
from medallion_assets.framework.build import Build, TableCatalog
from medallion_assets.framework.errors import TableBuildError
from medallion_assets.framework.lakehouse import Lakehouse
from medallion_assets.framework.partitions import PartitionWindow
from medallion_assets.framework.refined_build import build_refined
from medallion_assets.framework.report import Meta, TableRunReport
from medallion_assets.framework.table import TableDeclaration

__all__ = ["TableCatalog", "TableRunReport", "run_table"]


def run_table(
    spark: SparkSession,
    lakehouse: Lakehouse,
    table: TableDeclaration,
    catalog: TableCatalog,
    window: PartitionWindow,
    *,
    run_id: str,
    accepted_checks: Collection[str] = (),
) -> TableRunReport:
    """Build `table` for `window`. The report says whether it was committed; see `TableRunReport.blocked_error`."""
    unknown = sorted(name for name in accepted_checks if not checks.is_check_name(name))
    if unknown:
        raise TableBuildError(
            f"no check is named {', '.join(unknown)}; blocking checks are " + ", ".join(sorted(checks.DESCRIPTIONS))
        )
    # A run that accepts a check accepts it for the tables that have it.
    accepted = frozenset(accepted_checks) & set(table.check_names)
    build = Build(spark, lakehouse, table, catalog, window, run_id, accepted)
    started = time.monotonic()
    report = build_bronze(build) if table.key.layer == "bronze" else build_refined(build)
    report.metadata[Meta.DURATION_S] = round(time.monotonic() - started, 3)
    report.metadata[Meta.PARTITION_WINDOW] = str(window)
    report.metadata[Meta.PARTITION_DAYS] = window.day_count
    return report
