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
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from medallion_assets.framework import bronze_ingest, checks
from medallion_assets.framework.delta_io import read_table_if_exists, read_window, write_window
from medallion_assets.framework.errors import (
    BlockingChecksFailed,
    FailedRules,
    HistoryOutOfOrder,
    MissingUpstream,
    TableBuildError,
)
from medallion_assets.framework.lakehouse import Lakehouse
from medallion_assets.framework.landing import folder_fingerprint
from medallion_assets.framework.partitions import PartitionWindow, describe_days
from medallion_assets.framework.quality import (
    FAILED_RULES,
    CheckOutcome,
    all_rules,
    contract_failure_counters,
    contract_outcome,
    failed_rules_column,
    sql_literal,
)
from medallion_assets.framework.scd2 import SCD2_COLUMNS, build_scd2
from medallion_assets.framework.table import Rule, TableDeclaration, TableKey

SOURCE_STRUCT = "_source"
MISSING_MARKERS = ("NA", "")
# Metadata and commit keys read by other modules and by operators.
LANDING_FINGERPRINTS = "landing_fingerprints"
ACCEPTED_BY_OPERATOR = "accepted_by_operator"
BUILD_ID = "build"
EXAMPLE_ROWS = 3


@dataclass
class TableRunReport:
    """Everything a materialization reports, in plain values that travel over Dagster Pipes."""

    table: TableKey
    window: PartitionWindow
    metadata: dict[str, Any] = field(default_factory=dict)
    checks: list[CheckOutcome] = field(default_factory=list)
    # False when a blocking check failed and nothing was written.
    committed: bool = False

    @property
    def blocking_failures(self) -> list[CheckOutcome]:
        return [check for check in self.checks if not check.passed and check.severity == "ERROR"]

    def blocked_error(self) -> BlockingChecksFailed:
        """The error a compute target raises for a window that was not committed."""
        reasons = "; ".join(f"{check.name}: {check.summary or check.description}" for check in self.blocking_failures)
        return BlockingChecksFailed(
            f"{self.table} {self.window} was not written, so readers keep its previous version: "
            f"blocking checks failed: {reasons}. Fix the input and re-run these partitions, or accept a check "
            "by name if the data is right."
        )


@dataclass
class TransformContext:
    spark: SparkSession
    window: PartitionWindow
    inputs: dict[str, DataFrame]
    table: TableDeclaration

    def input(self, alias: str) -> DataFrame:
        return self.inputs[alias]


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
            BUILD_ID: self.build_id,
            "table": str(self.table.key),
            "window": str(self.window),
            "run_id": self.run_id,
            "accepted_checks": sorted(self.accepted_checks),
        }


def parse_rules(casts: Mapping[str, str]) -> list[Rule]:
    """The line-level rules of a table built from landed files, then one drop rule per cast."""
    rules = [
        Rule(
            "line_decodes",
            f"{SOURCE_STRUCT}.{bronze_ingest.LINE_ERROR} IS DISTINCT FROM "
            f"{sql_literal(bronze_ingest.LineError.UNDECODABLE)}",
            "drop",
            "the line's bytes are valid text in its file's encoding",
        ),
        Rule(
            "line_is_well_formed",
            f"{SOURCE_STRUCT}.{bronze_ingest.LINE_ERROR} IS DISTINCT FROM "
            f"{sql_literal(bronze_ingest.LineError.MALFORMED)}",
            "drop",
            "the line parses into exactly the header's fields",
        ),
    ]
    missing = ", ".join(map(sql_literal, MISSING_MARKERS))
    for column, spark_type in casts.items():
        received = f"{SOURCE_STRUCT}.`{column}`"
        rules.append(
            Rule(
                f"{column}_is_{spark_type.split('(')[0].lower()}",
                f"NOT (trim({received}) NOT IN ({missing}) AND `{column}` IS NULL)",
                "drop",
                f"{column} parses as {spark_type}",
            )
        )
    return rules


def _typed(column: str, spark_type: str) -> Any:
    missing = ", ".join(map(sql_literal, MISSING_MARKERS))
    return F.expr(
        f"CASE WHEN trim(`{column}`) IN ({missing}) THEN NULL ELSE try_cast(trim(`{column}`) AS {spark_type}) END"
    ).alias(column)


PARSE_FAILURES = "_parse_failed_rules"


def prepare_source(bronze: DataFrame, expected: Sequence[str], casts: Mapping[str, str]) -> DataFrame:
    """Carry every bronze column of each data line in `_source` (for quarantine) and parse the typed columns.

    Parse failures are judged here, before a transform can rename or drop the parsed columns, and
    travel inside `_source` so every transform carries them along without knowing about them.
    """
    filled = bronze
    for column in expected:
        if column not in filled.columns:
            filled = filled.withColumn(column, F.lit(None).cast("string"))
    prepared = filled.select(
        *[_typed(c, casts[c]) if c in casts else F.col(f"`{c}`") for c in filled.columns],
        F.struct(*[F.col(f"`{c}`") for c in filled.columns]).alias(SOURCE_STRUCT),
    )
    parse_failures = F.expr(failed_rules_column(parse_rules(casts)))
    return prepared.withColumn(SOURCE_STRUCT, F.col(SOURCE_STRUCT).withField(PARSE_FAILURES, parse_failures))


def source_schema_outcome(delivered: set[str], expected: Sequence[str]) -> CheckOutcome:
    """Judge the columns the landed files delivered (from bronze's `_source_columns`) against the contract."""
    missing = sorted(set(expected) - delivered) if delivered else []
    extra = sorted(delivered - set(expected))
    if missing:
        return CheckOutcome(
            checks.SOURCE_SCHEMA,
            passed=False,
            description="landed files carry every column the contract needs",
            metadata={"missing_columns": missing, "unexpected_columns": extra},
            summary=f"the landed files lack column(s) {', '.join(missing)}",
        )
    return CheckOutcome(
        checks.SOURCE_SCHEMA,
        passed=not extra,
        severity="WARN",
        description="landed files carry every column the contract needs; unexpected columns are schema drift",
        metadata={"missing_columns": [], "unexpected_columns": extra},
    )


def _days_present(frame: DataFrame | None, partition_column: str) -> set[date]:
    if frame is None:
        return set()
    return {row[0] for row in frame.select(partition_column).distinct().collect()}


def _read_inputs(build: Build) -> dict[str, DataFrame]:
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
        present = _days_present(frame, declaration.partition_column)
        missing = [day for day in build.window.days() if day not in present]
        if missing:
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


def _measure(df: DataFrame, expression: str) -> int:
    value = df.select(F.expr(expression).alias("m")).first()
    return int(value["m"] or 0)


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
    report = _run_bronze(build) if table.key.layer == "bronze" else _run_refined(build)
    report.metadata["duration_s"] = round(time.monotonic() - started, 3)
    report.metadata["partition_window"] = str(window)
    report.metadata["partition_days"] = window.day_count
    return report


def _may_commit(build: Build, report: TableRunReport) -> bool:
    """Apply the operator's acceptances, then say whether every blocking check now allows the commit."""
    for position, outcome in enumerate(report.checks):
        if not outcome.passed and outcome.severity == "ERROR" and outcome.name in build.accepted_checks:
            report.checks[position] = replace(
                outcome,
                severity="WARN",
                metadata={**outcome.metadata, ACCEPTED_BY_OPERATOR: f"run {build.run_id} accepted this failure"},
            )
    if build.accepted_checks:
        report.metadata["accepted_checks"] = sorted(build.accepted_checks)
    return not report.blocking_failures


def _run_bronze(build: Build) -> TableRunReport:
    table, window = build.table, build.window
    assert table.source is not None
    # Taken before any file is read: a file that changes mid-ingest gets a new fingerprint, and the sensor
    # re-runs its day.
    fingerprints = {
        day.isoformat(): folder_fingerprint(build.lakehouse.landing_dir(table.source.name, day))
        for day in window.days()
    }
    files = bronze_ingest.discover_landed_files(build.lakehouse, table.source, window)
    rows = bronze_ingest.ingest(
        build.spark,
        table.source,
        files,
        run_id=build.run_id,
        ingested_at=datetime.now(UTC),
        partition_column=table.partition_column,
    )
    per_day = {
        row[table.partition_column]: row["counts"].asDict()
        for row in rows.groupBy(table.partition_column).agg(bronze_ingest.line_counts().alias("counts")).collect()
    }
    totals = {name: sum(counts[name] for counts in per_day.values()) for name in bronze_ingest.LINE_COUNTS}
    counted_lines = sum(landed.physical_lines for landed in files)
    empty_days = [day for day in window.days() if not per_day.get(day, {}).get("data_lines")]
    report = TableRunReport(table.key, window)
    report.checks += [
        CheckOutcome(
            checks.LANDING_DELIVERED,
            passed=not empty_days,
            description="every day delivered at least one data line",
            metadata={"days_without_data": [day.isoformat() for day in empty_days]},
            summary=f"no data line landed for {describe_days(empty_days)}"
            + " (the day folder exists, with no file or only empty or header-only files)",
        ),
        CheckOutcome(
            checks.LANDING_RECONCILIATION,
            passed=counted_lines == totals["lines"],
            description="every landed line is a bronze row, a header line or a blank line",
            metadata={
                "landed_lines": counted_lines,
                "bronze_rows": totals["data_lines"],
                "header_lines": totals["header_lines"],
                "blank_lines": totals["blank_lines"],
            },
            summary=f"the files hold {counted_lines} lines and Spark read {totals['lines']}",
        ),
    ]
    report.metadata.update(
        {
            "rows_in": totals["data_lines"],
            "landed_lines": counted_lines,
            **totals,
            "landed_files": len(files),
            "empty_files": sum(not landed.has_lines for landed in files),
            "file_encodings": sorted({landed.encoding for landed in files}),
            LANDING_FINGERPRINTS: fingerprints,
        }
    )
    if not _may_commit(build, report):
        return report
    location = build.lakehouse.table(table.key)
    commit = write_window(
        bronze_ingest.data_lines(rows),
        location,
        window,
        table.partition_column,
        evolve_schema=True,
        note=build.commit_note(),
    )
    # The files were read twice, to judge and to write; a file that changed in between is caught here.
    _expect_committed(build, table.key, commit.window_rows, totals["data_lines"])
    report.committed = True
    report.metadata.update({"rows_out": commit.window_rows, "delta_version": commit.version, "table": str(location)})
    return report


@dataclass(frozen=True)
class DayTally:
    rows_in: int = 0
    quarantined: int = 0
    duplicates: int = 0
    superseded: int = 0
    failures: Mapping[str, int] = field(default_factory=dict)

    @property
    def kept(self) -> int:
        return self.rows_in - self.quarantined - self.duplicates - self.superseded


@dataclass(frozen=True)
class RuleTally:
    days: Mapping[date, DayTally]
    rules: Sequence[Rule]
    # The columns the landed files delivered, for a table built from a landing source.
    delivered_columns: set[str] | None = None

    def day(self, day: date) -> DayTally:
        return self.days.get(day, DayTally())

    def total(self, measure: str) -> int:
        return sum(getattr(tally, measure) for tally in self.days.values())

    def failures(self, days: Collection[date] | None = None) -> dict[str, int]:
        chosen = [tally for day, tally in self.days.items() if days is None or day in days]
        return {rule.name: sum(tally.failures.get(rule.name, 0) for tally in chosen) for rule in self.rules}


REJECTED = "__rejected"
DUPLICATE = "__duplicate"
SUPERSEDED = "__superseded"
QUARANTINED = "__quarantined"


def _classify(evaluated: DataFrame, table: TableDeclaration, blocking: set[str], from_landing: bool) -> DataFrame:
    """Flag each row as rejected (a drop or fail rule), a duplicate of a kept row, or superseded, in one pass.

    Among good rows of one key and day the newest delivery is kept. A rejected row whose key and day have a
    good row from a delivery that landed after it was corrected by that delivery: it is superseded, counted,
    and not quarantined. Every other rejected row is quarantined.
    """
    rejected = (
        F.arrays_overlap(FAILED_RULES, F.array(*[F.lit(name) for name in sorted(blocking)]))
        if blocking
        else F.lit(False)
    )
    flagged = evaluated.withColumn(REJECTED, rejected)
    if not table.natural_key:
        return flagged.withColumns({DUPLICATE: F.lit(False), SUPERSEDED: F.lit(False), QUARANTINED: F.col(REJECTED)})
    same_key = Window.partitionBy(*table.natural_key, table.partition_column)
    ranking = Window.partitionBy(*table.natural_key, table.partition_column, REJECTED).orderBy(
        *[F.expr(expression) for expression in table.dedup_order]
    )
    superseded = F.lit(False)
    if from_landing:
        landed_at = F.col(f"{SOURCE_STRUCT}.{bronze_ingest.LANDED_AT}")
        newest_good = F.max(F.when(~F.col(REJECTED), landed_at)).over(same_key)
        superseded = F.col(REJECTED) & F.coalesce(newest_good > landed_at, F.lit(False))
    return (
        flagged.withColumn(DUPLICATE, ~F.col(REJECTED) & (F.row_number().over(ranking) > 1))
        .withColumn(SUPERSEDED, superseded)
        .withColumn(QUARANTINED, F.col(REJECTED) & ~F.col(SUPERSEDED))
    )


DELIVERED_COLUMNS = "__delivered_columns"


def _tally(classified: DataFrame, table: TableDeclaration, rules: Sequence[Rule], *, from_landing: bool) -> RuleTally:
    """Per day: rows, quarantined, duplicates, superseded and each rule's failures, in one pass."""
    delivered = (
        [F.flatten(F.collect_set(f"{SOURCE_STRUCT}.{bronze_ingest.SOURCE_COLUMNS}")).alias(DELIVERED_COLUMNS)]
        if from_landing
        else []
    )
    rows = (
        classified.groupBy(table.partition_column)
        .agg(
            F.count(F.lit(1)).alias("__rows"),
            F.count_if(QUARANTINED).alias("__quarantined"),
            F.count_if(DUPLICATE).alias("__duplicates"),
            F.count_if(SUPERSEDED).alias("__superseded"),
            *[F.count_if(F.array_contains(FAILED_RULES, rule.name)).alias(rule.name) for rule in rules],
            *delivered,
        )
        .collect()
    )
    days = {
        row[table.partition_column]: DayTally(
            rows_in=int(row["__rows"]),
            quarantined=int(row["__quarantined"]),
            duplicates=int(row["__duplicates"]),
            superseded=int(row["__superseded"]),
            failures={rule.name: int(row[rule.name]) for rule in rules},
        )
        for row in rows
    }
    delivered_columns = {c for row in rows for c in row[DELIVERED_COLUMNS] if c is not None} if from_landing else None
    return RuleTally(days, rules, delivered_columns)


def _example_rows(classified: DataFrame, table: TableDeclaration, days: Sequence[date]) -> list[dict[str, Any]]:
    """A few quarantined rows of `days`, as delivered, for a message a person can act on."""
    in_days = F.col(table.partition_column).isin(list(days))
    rows = (
        classified.where(F.col(QUARANTINED) & in_days)
        .select(
            F.col(table.partition_column).cast("string").alias("day"),
            F.col(f"{SOURCE_STRUCT}.{bronze_ingest.SOURCE_FILE}").alias("file"),
            F.make_valid_utf8(F.col(f"{SOURCE_STRUCT}.{bronze_ingest.RAW_LINE}").cast("string")).alias("line"),
            F.col(FAILED_RULES).alias("failed_rules"),
        )
        .limit(EXAMPLE_ROWS)
        .collect()
    )
    return [{**row.asDict(), "line": (row["line"] or "")[:200]} for row in rows]


def quarantine_rate_outcome(
    table: TableDeclaration, window: PartitionWindow, tally: RuleTally, examples: Any
) -> CheckOutcome:
    """Blocking: each day keeps rows, and quarantines no more than `max_quarantine_rate` of them.

    A day that delivered nothing or kept nothing fails whatever the threshold. `examples(days)` is called only
    for a failing window, so a passing one costs no extra query.
    """
    limit = table.max_quarantine_rate
    rates = {
        day.isoformat(): round(tally.day(day).quarantined / tally.day(day).rows_in, 6)
        if tally.day(day).rows_in
        else None
        for day in window.days()
    }
    failing = [
        day
        for day in window.days()
        if tally.day(day).rows_in == 0
        or tally.day(day).kept == 0
        or tally.day(day).quarantined > limit * tally.day(day).rows_in
    ]
    metadata: dict[str, Any] = {
        "max_quarantine_rate": limit,
        "quarantine_rate": round(tally.total("quarantined") / tally.total("rows_in"), 6)
        if tally.total("rows_in")
        else None,
        "quarantine_rate_by_day": rates,
        "failing_days": [day.isoformat() for day in failing],
    }
    summary = ""
    if failing:
        # Most rows first; among equals, the earlier rule: line-level rules come first and are usually the cause.
        counted = tally.failures(failing)
        order = {rule.name: position for position, rule in enumerate(tally.rules)}
        top = sorted(((counted[name], name) for name in counted if counted[name]), key=lambda x: (-x[0], order[x[1]]))[
            :3
        ]
        metadata["top_failing_rules"] = {name: n for n, name in top}
        metadata["example_rows"] = examples(failing)
        details = [
            f"{day}: {tally.day(day).quarantined} of {tally.day(day).rows_in} rows quarantined"
            if tally.day(day).rows_in
            else f"{day}: no rows"
            for day in failing[:5]
        ]
        summary = (
            f"{len(failing)} day(s) above the {limit:.0%} quarantine threshold or with no rows kept ("
            + "; ".join(details)
            + (")" if len(failing) <= 5 else "; ...)")
            + (f"; top failing rules: {', '.join(f'{name} ({n})' for n, name in top)}" if top else "")
            + (
                f"; e.g. {metadata['example_rows'][0]['file']}: {metadata['example_rows'][0]['line']!r}"
                if metadata["example_rows"]
                else ""
            )
        )
    return CheckOutcome(
        checks.QUARANTINE_RATE,
        passed=not failing,
        description=checks.DESCRIPTIONS[checks.QUARANTINE_RATE],
        metadata=metadata,
        summary=summary,
    )


def _run_refined(build: Build) -> TableRunReport:
    table, window = build.table, build.window
    assert table.transform is not None and table.contract is not None
    report = TableRunReport(table.key, window)
    inputs = _read_inputs(build)
    primary = table.primary_input
    rules = all_rules(table)
    failed_rules = failed_rules_column(rules)
    expected_columns: Sequence[str] = ()
    from_landing = (
        table.has_quarantine and primary is not None and build.catalog[table.inputs[primary].table].source is not None
    )
    if from_landing:
        assert primary is not None
        source = build.catalog[table.inputs[primary].table].source
        assert source is not None
        expected_columns = source.columns
        inputs[primary] = prepare_source(inputs[primary], expected_columns, table.casts)
        rules = all_rules(table, parse_rules(table.casts))
        failed_rules = f"concat({SOURCE_STRUCT}.{PARSE_FAILURES}, {failed_rules})"

    blocking = {rule.name for rule in rules if rule.severity in ("drop", "fail")}
    transformed = table.transform(TransformContext(build.spark, window, inputs, table))
    # Not cached: serverless compute (Spark Connect) rejects cache() and persist(). The tally, the profile of the
    # output and the writes each compute the classification; the quarantine write computes it only when the tally
    # found quarantined rows.
    classified = _classify(transformed.withColumn(FAILED_RULES, F.expr(failed_rules)), table, blocking, from_landing)
    tally = _tally(classified, table, rules, from_landing=from_landing)
    fatal = {name: n for name, n in tally.failures().items() if n and name in _fail_rules(rules)}
    if fatal:
        raise FailedRules(
            f"{table.key} {window}: rules with severity 'fail' were violated: "
            + ", ".join(f"{name} ({n} rows)" for name, n in fatal.items())
            + ". Nothing was written; fix the input or the rule, then re-run."
        )
    if tally.delivered_columns is not None:
        report.checks.append(source_schema_outcome(tally.delivered_columns, expected_columns))
    if table.has_quarantine:
        report.checks.append(
            quarantine_rate_outcome(table, window, tally, lambda days: _example_rows(classified, table, days))
        )
    kept = classified.where(f"NOT {REJECTED} AND NOT {DUPLICATE}")
    output = _scd2_output(build, kept) if table.scd2 is not None else kept.select(*table.output_columns)
    report.metadata.update(
        {
            "rows_in": tally.total("rows_in"),
            "duplicates_dropped": tally.total("duplicates"),
            "rows_superseded": tally.total("superseded"),
            **{f"rule_failures/{name}": count for name, count in tally.failures().items()},
            "rows_warned": sum(count for name, count in tally.failures().items() if name not in blocking),
        }
    )
    if table.has_quarantine:
        report.metadata["rows_quarantined"] = tally.total("quarantined")
    profile = _profile_output(build, inputs, output, tally, report)
    if not _may_commit(build, report):
        return report
    _commit(build, classified, output, tally, profile, report)
    return report


def _fail_rules(rules: Sequence[Rule]) -> set[str]:
    return {rule.name for rule in rules if rule.severity == "fail"}


def _commit(
    build: Build,
    classified: DataFrame,
    output: DataFrame,
    tally: RuleTally,
    profile: Mapping[str, int],
    report: TableRunReport,
) -> None:
    """The quarantine first, then the table, both tagged with the build: a reader pairs them by `build`.

    Each commit's row count is compared with what was judged, so a commit that differs stops the build.
    """
    table, window = build.table, build.window
    if table.has_quarantine:
        # The bronze columns as received, so a quarantined row can be replayed after a fix.
        quarantine = classified.where(QUARANTINED).select(f"{SOURCE_STRUCT}.*", FAILED_RULES).drop(PARSE_FAILURES)
        if not tally.total("quarantined"):
            # Spark plans limit(0) as an empty relation that reads no input; the write still replaces the window,
            # clearing rows quarantined by an earlier run.
            quarantine = quarantine.limit(0)
        location = build.lakehouse.table(table.quarantine_key)
        committed = write_window(
            quarantine, location, window, table.partition_column, evolve_schema=True, note=build.commit_note()
        )
        _expect_committed(build, table.quarantine_key, committed.window_rows, tally.total("quarantined"))
        report.metadata.update({"quarantine_table": str(location), "quarantine_delta_version": committed.version})
    location = build.lakehouse.table(table.key)
    commit = write_window(output, location, window, table.partition_column, note=build.commit_note())
    _expect_committed(build, table.key, commit.window_rows, profile["rows"])
    report.committed = True
    report.metadata.update({"table": str(location), "delta_version": commit.version, BUILD_ID: build.build_id})


def _expect_committed(build: Build, key: TableKey, committed: int, judged: int) -> None:
    if committed != judged:
        raise TableBuildError(
            f"{key} {build.window}: the commit holds {committed} rows of the window, but {judged} were judged. "
            "An input changed during the build; re-run these partitions."
        )


def _scd2_output(build: Build, kept: DataFrame) -> DataFrame:
    """SCD2 history for the window, refusing any order of builds that would make it differ from in-order builds.

    The window's history continues from the state of the day before it. So that state must exist whenever an
    earlier day does, and a table that already holds later days must end the window in the state those days
    were built from; otherwise the message names the days to rebuild together in one run.
    """
    table, window = build.table, build.window
    assert table.scd2 is not None
    column = table.partition_column
    stored = read_table_if_exists(build.spark, build.lakehouse.table(table.key))
    day_before = window.start - timedelta(days=1)
    previous = None
    if stored is not None:
        latest_before = stored.where(F.col(column) < window.start).agg(F.max(column)).first()[0]
        if latest_before is not None and latest_before != day_before:
            raise HistoryOutOfOrder(
                f"{table.key} {window}: its history continues from {day_before}, which is not built, while "
                f"{latest_before} is. Rebuild {PartitionWindow(latest_before + timedelta(days=1), window.end)} in "
                "one run (a single-run backfill), so that each day follows from the day before it."
            )
        if latest_before is not None:
            previous = stored.where(F.col(column) == day_before)
    snapshot = kept.select(*[c for c in table.output_columns if c not in SCD2_COLUMNS])
    output = build_scd2(snapshot, previous, table.scd2.key, column, window).select(*table.output_columns)
    if stored is None:
        return output
    later = stored.where(F.col(column) >= window.end).agg(F.max(column)).first()[0]
    if later is not None:
        state = [*table.scd2.key, "row_hash", "valid_from"]
        new_end = output.where(F.col("is_current") & (F.col(column) == window.last_day)).select(*state)
        old_end = stored.where(F.col("is_current") & (F.col(column) == window.last_day)).select(*state)
        differing = new_end.exceptAll(old_end).union(old_end.exceptAll(new_end)).limit(1).count()
        if differing:
            raise HistoryOutOfOrder(
                f"{table.key} {window}: later days up to {later} are built, from a history that this build "
                f"changes on {window.last_day}. Rebuild {PartitionWindow(window.start, later + timedelta(days=1))} "
                "in one run (a single-run backfill), so that the later days follow from it."
            )
    return output


def _parent_keys(build: Build, fk_references: TableKey, references_column: str, name: str) -> DataFrame:
    """The distinct (key, day) pairs of a foreign key's parent in the window, named apart from any child column."""
    parent = build.catalog[fk_references]
    rows = read_window(build.spark, build.lakehouse.table(fk_references), build.window, parent.partition_column)
    if rows is None:
        return build.spark.createDataFrame([], f"`__key_{name}` bigint, `__day_{name}` date")
    return rows.select(
        F.col(references_column).alias(f"__key_{name}"), F.col(parent.partition_column).alias(f"__day_{name}")
    ).distinct()


def _profile_output(
    build: Build, inputs: dict[str, DataFrame], output: DataFrame, tally: RuleTally, report: TableRunReport
) -> dict[str, int]:
    """Judge the rows about to be written: the contract, conservation and foreign keys, in one Spark pass.

    Each foreign key is a left join of the rows to the parent's distinct keys, so a row keeps its
    multiplicity and an orphan is a row whose parent columns stay null.
    """
    table, window = build.table, build.window
    assert table.contract is not None
    is_current = F.col("is_current") if table.scd2 is not None else F.lit(True)
    contract_columns = list(table.contract.to_schema().columns)
    counters = contract_failure_counters(table, output.columns, is_current)
    profiled = output
    for fk in table.foreign_keys:
        keys = _parent_keys(build, fk.references, fk.references_column, fk.name)
        profiled = profiled.join(
            keys,
            (F.col(fk.column) == F.col(f"__key_{fk.name}"))
            & (F.col(table.partition_column) == F.col(f"__day_{fk.name}")),
            "left",
        )
    conservation = table.conservation if not table.has_quarantine else None
    profile = profiled.agg(
        F.count(F.lit(1)).alias("__rows"),
        F.count_if(is_current).alias("__current_rows"),
        *[counter.alias(f"__failing_{i}") for i, (_, counter) in enumerate(counters)],
        *[
            F.count_if(F.col(fk.column).isNotNull() & F.col(f"__key_{fk.name}").isNull()).alias(f"__orphans_{fk.name}")
            for fk in table.foreign_keys
        ],
        *([F.expr(conservation.output_measure).alias("__output_measure")] if conservation is not None else []),
    ).first()
    rows_out = int(profile["__current_rows"])
    report.metadata["rows_out"] = rows_out
    if table.scd2 is not None:
        report.metadata["history_rows_closed"] = int(profile["__rows"]) - rows_out
    current_rows = output.where(is_current).select(*[c for c in contract_columns if c in output.columns])
    report.checks.append(
        contract_outcome(
            table,
            current_rows,
            [(condition, int(profile[f"__failing_{i}"])) for i, (condition, _) in enumerate(counters)],
        )
    )
    if table.has_quarantine:
        quarantined, duplicates, superseded = (tally.total(m) for m in ("quarantined", "duplicates", "superseded"))
        unaccounted = tally.total("rows_in") - rows_out - quarantined - duplicates - superseded
        report.checks.append(
            CheckOutcome(
                checks.RECONCILIATION,
                passed=unaccounted == 0,
                description="rows in = rows out + quarantined + duplicates dropped + superseded by a later delivery",
                metadata={
                    "rows_in": tally.total("rows_in"),
                    "rows_out": rows_out,
                    "rows_quarantined": quarantined,
                    "duplicates_dropped": duplicates,
                    "rows_superseded": superseded,
                    "rows_unaccounted": unaccounted,
                },
                summary=f"{unaccounted} row(s) are unaccounted for",
            )
        )
    elif conservation is not None:
        expected = (
            _measure(inputs[conservation.input_alias], conservation.input_measure)
            if conservation.input_alias is not None
            else window.day_count
        )
        actual = int(profile["__output_measure"] or 0)
        report.checks.append(
            CheckOutcome(
                checks.RECONCILIATION,
                passed=expected == actual,
                description=(
                    f"{conservation.output_measure} of the output equals "
                    + (
                        f"{conservation.input_measure} of input {conservation.input_alias}"
                        if conservation.input_alias is not None
                        else "the number of days in the window"
                    )
                ),
                metadata={"input_measure": expected, "output_measure": actual, "difference": actual - expected},
                summary=f"the output measures {actual}, the input {expected}",
            )
        )
    for fk in table.foreign_keys:
        orphans = int(profile[f"__orphans_{fk.name}"])
        report.checks.append(
            CheckOutcome(
                checks.foreign_key_check(fk.name),
                passed=orphans == 0,
                description=f"{fk.column} references {fk.references}.{fk.references_column}",
                metadata={"orphan_rows": orphans, "references": str(fk.references)},
                summary=f"{orphans} row(s) reference no {fk.references} row",
            )
        )
    return {"rows": int(profile["__rows"])}
