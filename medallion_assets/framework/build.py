"""One materialization in progress, and the steps every table's build shares: inputs, judgement, commits."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any
from urllib.parse import unquote

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from medallion_assets.framework.delta_io import read_window
from medallion_assets.framework.errors import MissingUpstream, TableBuildError
from medallion_assets.framework.lakehouse import Lakehouse
from medallion_assets.framework.partitions import PartitionWindow, describe_days
from medallion_assets.framework.report import Meta, TableRunReport
from medallion_assets.framework.table import TableDeclaration, TableKey

TableCatalog = Mapping[TableKey, TableDeclaration]


@dataclass(frozen=True)
class Build:
    """One materialization: what is built, over which days, where, and the operator's accepted checks."""

    spark: SparkSession
    lakehouse: Lakehouse
    table: TableDeclaration
    catalog: TableCatalog
    window: PartitionWindow
    run_id: str
    accepted_checks: frozenset[str]
    # Shared by the commits of one build (a silver table and its quarantine), so a reader can pair them.
    build_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def partition_column(self) -> str:
        return self.table.partition_column

    def commit_note(self) -> dict[str, Any]:
        return {
            Meta.BUILD_ID: self.build_id,
            "table": str(self.table.key),
            "window": str(self.window),
            "run_id": self.run_id,
            "accepted_checks": sorted(self.accepted_checks),
        }


def days_present(frame: DataFrame | None, partition_column: str) -> set[date]:
    """The days a window's frame holds rows for, read from the Delta files it would scan.

    Delta writes a partitioned table's files under `<column>=<value>/` and never writes a file for an empty
    day, so the file list answers without a scan: a `SELECT DISTINCT` cost 30 to 80 Spark jobs per build (one
    per adaptive stage, per input), the file list none. A layout without such directories (liquid clustering,
    a prefix-randomised table) falls back to the query.
    """
    if frame is None:
        return set()
    files = frame.inputFiles()
    pattern = re.compile(rf"/{re.escape(partition_column)}=(\d{{4}}-\d{{2}}-\d{{2}})/")
    found = [pattern.search(unquote(path)) for path in files]
    if all(found):
        return {date.fromisoformat(match.group(1)) for match in found if match}
    return {row[0] for row in frame.select(partition_column).distinct().collect()}


def may_lack_days(key: TableKey, catalog: TableCatalog) -> bool:
    """Whether the table may hold no rows for a day it was built for: its landing source delivers such days.

    A refined table inherits it from its primary input. An input that may lack days is read without the gap
    check, so a day it was never built for reads as empty too: the asset graph (automation) orders those builds.
    """
    table = catalog[key]
    if table.source is not None:
        return table.source.days_without_rows
    primary = table.primary_input
    return primary is not None and may_lack_days(table.inputs[primary].table, catalog)


def read_inputs(build: Build) -> dict[str, DataFrame]:
    """Each input over the window; a day an input holds no rows for is a gap, and gaps stop the build.

    An absent day is never read as an empty one: it was not materialized, or a blocking check kept it out.
    """
    inputs: dict[str, DataFrame] = {}
    gaps: dict[TableKey, list[date]] = {}
    for alias, upstream in build.table.inputs.items():
        declaration = build.catalog[upstream.table]
        frame = read_window(
            build.spark, build.lakehouse.table(upstream.table), build.window, declaration.partition_column
        )
        present = days_present(frame, declaration.partition_column)
        missing = [day for day in build.window.days() if day not in present]
        if missing and (frame is None or not may_lack_days(upstream.table, build.catalog)):
            gaps[upstream.table] = missing
        if frame is not None:
            inputs[alias] = protect_pii(frame, declaration.pii_columns) if build.table.key.layer == "gold" else frame
    if gaps:
        raise MissingUpstream(
            f"{build.table.key} {build.window} was not built: "
            + "; ".join(f"{key} holds no rows for {describe_days(days)}" for key, days in gaps.items())
            + ". Those days were never materialized, or a blocking check kept them out; materialize them first."
        )
    return inputs


def protect_pii(frame: DataFrame, pii_columns: Mapping[str, str]) -> DataFrame:
    """Hash or mask the columns a declaration marks as personal data, before any gold transform runs."""
    for column, treatment in pii_columns.items():
        if column not in frame.columns:
            continue
        value = F.col(column).cast("string")
        protected = (
            F.sha2(value, 256)
            if treatment == "hash"
            else F.concat(F.repeat(F.lit("*"), F.greatest(F.length(value) - 2, F.lit(0))), F.right(value, F.lit(2)))
        )
        frame = frame.withColumn(column, F.when(value.isNotNull(), protected))
    return frame


def measure(df: DataFrame, expression: str) -> int:
    value = df.select(F.expr(expression).alias("m")).first()
    return int(value["m"] or 0)


def may_commit(build: Build, report: TableRunReport) -> bool:
    """Apply the operator's acceptances, then say whether every blocking check now allows the commit."""
    for position, outcome in enumerate(report.checks):
        if not outcome.passed and outcome.severity == "ERROR" and outcome.name in build.accepted_checks:
            report.checks[position] = replace(
                outcome,
                severity="WARN",
                metadata={**outcome.metadata, Meta.ACCEPTED_BY_OPERATOR: f"run {build.run_id} accepted this failure"},
            )
    if build.accepted_checks:
        report.metadata[Meta.ACCEPTED_CHECKS] = sorted(build.accepted_checks)
    return not report.blocking_failures


def expect_committed(build: Build, key: TableKey, committed: int, judged: int) -> None:
    if committed != judged:
        raise TableBuildError(
            f"{key} {build.window}: the commit holds {committed} rows of the window, but {judged} were judged. "
            "An input changed during the build; re-run these partitions."
        )
