"""Build one table for one partition window: read, transform, apply rules, write, check.

This is the single code path behind both compute targets: the local resource calls it in-process
and the Databricks runtime entry point calls it on the cluster.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from medallion_assets.framework import bronze_ingest
from medallion_assets.framework.delta_io import read_window, write_window
from medallion_assets.framework.errors import FailedRules, MissingUpstream
from medallion_assets.framework.lakehouse import Lakehouse
from medallion_assets.framework.landing import folder_fingerprint
from medallion_assets.framework.partitions import PartitionWindow
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
from medallion_assets.framework.table import ForeignKey, Rule, TableDeclaration, TableKey

SOURCE_STRUCT = "_source"
MISSING_MARKERS = ("NA", "")


@dataclass
class TableRunReport:
    """Everything a materialization reports, in plain values that travel over Dagster Pipes."""

    table: TableKey
    window: PartitionWindow
    metadata: dict[str, Any] = field(default_factory=dict)
    checks: list[CheckOutcome] = field(default_factory=list)


@dataclass
class TransformContext:
    spark: SparkSession
    window: PartitionWindow
    inputs: dict[str, DataFrame]
    table: TableDeclaration

    def input(self, alias: str) -> DataFrame:
        return self.inputs[alias]


TableCatalog = Mapping[TableKey, TableDeclaration]


def parse_rules(casts: Mapping[str, str]) -> list[Rule]:
    """One drop rule per cast: a value was received but does not parse as its type."""
    rules = [
        Rule(
            "line_is_well_formed",
            f"{SOURCE_STRUCT}._corrupt_record IS NULL",
            "drop",
            "the CSV line has the header's field count",
        ),
        Rule("source_is_utf8", f"{SOURCE_STRUCT}._source_encoding = 'UTF-8'", "drop", "the landed file is UTF-8 text"),
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
    """Carry every bronze column in `_source` (for quarantine) and parse the typed columns.

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
            "source_schema",
            passed=False,
            description="landed files carry every column the contract needs",
            metadata={"missing_columns": missing, "unexpected_columns": extra},
        )
    return CheckOutcome(
        "source_schema",
        passed=not extra,
        severity="WARN",
        description="landed files carry every column the contract needs; unexpected columns are schema drift",
        metadata={"missing_columns": [], "unexpected_columns": extra},
    )


def _read_inputs(
    spark: SparkSession, lakehouse: Lakehouse, table: TableDeclaration, catalog: TableCatalog, window: PartitionWindow
) -> dict[str, DataFrame]:
    inputs: dict[str, DataFrame] = {}
    for alias, upstream in table.inputs.items():
        declaration = catalog[upstream.table]
        frame = read_window(spark, lakehouse.table(upstream.table), window, declaration.partition_column)
        if frame is None:
            raise MissingUpstream(f"{table.key} needs {upstream.table}, which has never been materialized")
        inputs[alias] = protect_pii(frame, declaration.pii_columns) if table.key.layer == "gold" else frame
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
) -> TableRunReport:
    started = time.monotonic()
    if table.key.layer == "bronze":
        report = _run_bronze(spark, lakehouse, table, window, run_id)
    else:
        report = _run_refined(spark, lakehouse, table, catalog, window)
    report.metadata["duration_s"] = round(time.monotonic() - started, 3)
    report.metadata["partition_window"] = str(window)
    report.metadata["partition_days"] = window.day_count
    return report


LANDING_FINGERPRINTS = "landing_fingerprints"


def _run_bronze(
    spark: SparkSession, lakehouse: Lakehouse, table: TableDeclaration, window: PartitionWindow, run_id: str
) -> TableRunReport:
    assert table.source is not None
    # Taken before any file is read: a file that changes mid-ingest gets a new fingerprint, and the sensor
    # re-runs its day.
    fingerprints = {
        day.isoformat(): folder_fingerprint(lakehouse.landing_dir(table.source.name, day)) for day in window.days()
    }
    files = bronze_ingest.discover_landed_files(lakehouse, table.source, window)
    rows = bronze_ingest.ingest(
        spark,
        table.source,
        files,
        run_id=run_id,
        ingested_at=datetime.now(UTC),
        partition_column=table.partition_column,
    )
    location = lakehouse.table(table.key)
    commit = write_window(rows, location, window, table.partition_column, evolve_schema=True)
    written = read_window(spark, location, window, table.partition_column)
    assert written is not None
    counts = written.agg(
        F.count(F.lit(1)).alias("rows"), F.count(bronze_ingest.CORRUPT_RECORD).alias("corrupt")
    ).first()
    landed_lines = sum(f.data_lines for f in files)
    report = TableRunReport(table.key, window)
    report.metadata.update(
        {
            "rows_in": landed_lines,
            "rows_out": int(counts["rows"]),
            "malformed_lines": int(counts["corrupt"]),
            "landed_files": len(files),
            "empty_files": sum(f.is_empty for f in files),
            "non_utf8_files": [f.relative_path for f in files if f.encoding != bronze_ingest.UTF8],
            LANDING_FINGERPRINTS: fingerprints,
            "delta_version": commit.version,
            "table": str(location),
        }
    )
    report.checks.append(
        CheckOutcome(
            "landing_reconciliation",
            passed=landed_lines == int(counts["rows"]),
            description="every landed data line is a bronze row",
            metadata={"landed_lines": landed_lines, "bronze_rows": int(counts["rows"])},
        )
    )
    return report


@dataclass(frozen=True)
class RuleTally:
    rows_in: int
    rejected: int
    duplicates: int
    failures: dict[str, int]
    # The columns the landed files delivered, for a table built from a landing source.
    delivered_columns: set[str] | None = None


REJECTED = "__rejected"
DUPLICATE = "__duplicate"


def _classify(evaluated: DataFrame, table: TableDeclaration, blocking: set[str]) -> DataFrame:
    """Flag each row as rejected (a drop or fail rule) or as a duplicate of a kept row, in one pass."""
    rejected = (
        F.arrays_overlap(FAILED_RULES, F.array(*[F.lit(name) for name in sorted(blocking)]))
        if blocking
        else F.lit(False)
    )
    flagged = evaluated.withColumn(REJECTED, rejected)
    if not table.natural_key:
        return flagged.withColumn(DUPLICATE, F.lit(False))
    ranking = Window.partitionBy(*table.natural_key, table.partition_column, REJECTED).orderBy(
        *[F.expr(expression) for expression in table.dedup_order]
    )
    return flagged.withColumn(DUPLICATE, ~F.col(REJECTED) & (F.row_number().over(ranking) > 1))


DELIVERED_COLUMNS = "__delivered_columns"


def _tally(classified: DataFrame, rules: Sequence[Rule], *, from_landing: bool) -> RuleTally:
    """Count rows, rejections, duplicates and each rule's failures, and the delivered columns, in one pass."""
    delivered = (
        [F.flatten(F.collect_set(f"{SOURCE_STRUCT}.{bronze_ingest.SOURCE_COLUMNS}")).alias(DELIVERED_COLUMNS)]
        if from_landing
        else []
    )
    row = classified.agg(
        F.count(F.lit(1)).alias("__rows"),
        F.count_if(REJECTED).alias("__rejected"),
        F.count_if(DUPLICATE).alias("__duplicates"),
        *[F.count_if(F.array_contains(FAILED_RULES, rule.name)).alias(rule.name) for rule in rules],
        *delivered,
    ).first()
    return RuleTally(
        rows_in=int(row["__rows"]),
        rejected=int(row["__rejected"]),
        duplicates=int(row["__duplicates"]),
        failures={rule.name: int(row[rule.name]) for rule in rules},
        delivered_columns={c for c in row[DELIVERED_COLUMNS] if c is not None} if from_landing else None,
    )


def _run_refined(
    spark: SparkSession,
    lakehouse: Lakehouse,
    table: TableDeclaration,
    catalog: TableCatalog,
    window: PartitionWindow,
) -> TableRunReport:
    assert table.transform is not None and table.contract is not None
    report = TableRunReport(table.key, window)
    inputs = _read_inputs(spark, lakehouse, table, catalog, window)
    primary = table.primary_input
    rules = all_rules(table)
    failed_rules = failed_rules_column(rules)
    expected_columns: Sequence[str] = ()
    from_landing = table.has_quarantine and primary is not None
    if from_landing:
        assert primary is not None
        source = catalog[table.inputs[primary].table].source
        expected_columns = source.columns if source is not None else ()
        inputs[primary] = prepare_source(inputs[primary], expected_columns, table.casts)
        rules = all_rules(table, parse_rules(table.casts))
        failed_rules = f"concat({SOURCE_STRUCT}.{PARSE_FAILURES}, {failed_rules})"

    blocking = {rule.name for rule in rules if rule.severity in ("drop", "fail")}
    transformed = table.transform(TransformContext(spark, window, inputs, table))
    # Not cached: serverless compute (Spark Connect) rejects cache() and persist(). The tally and the kept-rows
    # write each compute the classification; the quarantine write computes it a third time only when the tally
    # found rejected rows (see `_write_outputs`).
    classified = _classify(transformed.withColumn(FAILED_RULES, F.expr(failed_rules)), table, blocking)
    tally = _tally(classified, rules, from_landing=from_landing)
    if tally.delivered_columns is not None:
        report.checks.append(source_schema_outcome(tally.delivered_columns, expected_columns))
    fatal = {rule.name: tally.failures[rule.name] for rule in rules if rule.severity == "fail"}
    if any(fatal.values()):
        raise FailedRules(
            f"{table.key} {window}: rules with severity 'fail' were violated: "
            + ", ".join(f"{name} ({n} rows)" for name, n in fatal.items() if n)
            + ". Nothing was written; fix the input or the rule, then re-run."
        )
    quarantined = _write_outputs(spark, lakehouse, table, window, classified, tally, report)

    report.metadata.update(
        {
            "rows_in": tally.rows_in,
            "duplicates_dropped": tally.duplicates,
            **{f"rule_failures/{name}": count for name, count in tally.failures.items()},
            "rows_warned": sum(count for name, count in tally.failures.items() if name not in blocking),
        }
    )
    written = read_window(spark, lakehouse.table(table.key), window, table.partition_column)
    assert written is not None
    report.checks.extend(
        _checks_on_written(spark, lakehouse, table, catalog, window, inputs, written, tally, quarantined, report)
    )
    return report


def _write_outputs(
    spark: SparkSession,
    lakehouse: Lakehouse,
    table: TableDeclaration,
    window: PartitionWindow,
    classified: DataFrame,
    tally: RuleTally,
    report: TableRunReport,
) -> int:
    """Write the kept rows and the quarantine; return the number of quarantined rows committed."""
    assert table.contract is not None
    kept = classified.where(f"NOT {REJECTED} AND NOT {DUPLICATE}")
    if table.scd2 is None:
        output = kept.select(*table.output_columns)
    else:
        day_before = PartitionWindow(window.start - timedelta(days=1), window.start)
        previous = read_window(spark, lakehouse.table(table.key), day_before, table.partition_column)
        snapshot = kept.select(*[c for c in table.output_columns if c not in SCD2_COLUMNS])
        output = build_scd2(snapshot, previous, table.scd2.key, table.partition_column, window)
        output = output.select(*table.output_columns)
    location = lakehouse.table(table.key)
    commit = write_window(output, location, window, table.partition_column)
    report.metadata.update({"table": str(location), "delta_version": commit.version})
    if not table.has_quarantine:
        return 0
    # The bronze columns as received, so a quarantined row can be replayed after a fix.
    quarantine = classified.where(REJECTED).select(f"{SOURCE_STRUCT}.*", FAILED_RULES).drop(PARSE_FAILURES)
    if not tally.rejected:
        # The tally already counted no rejected row, so computing the classification again would find none.
        # Spark plans limit(0) as an empty relation that reads no input; the write still replaces the window,
        # clearing rows quarantined by an earlier run.
        quarantine = quarantine.limit(0)
    quarantine_location = lakehouse.table(table.quarantine_key)
    committed = write_window(quarantine, quarantine_location, window, table.partition_column, evolve_schema=True)
    quarantined = committed.window_rows
    report.metadata.update(
        {
            "quarantine_table": str(quarantine_location),
            "quarantine_delta_version": committed.version,
            "rows_quarantined": quarantined,
        }
    )
    return quarantined


def _parent_keys(
    spark: SparkSession, lakehouse: Lakehouse, catalog: TableCatalog, fk: ForeignKey, window: PartitionWindow
) -> DataFrame:
    """The distinct (key, day) pairs of a foreign key's parent in the window, named apart from any child column."""
    parent = catalog[fk.references]
    rows = read_window(spark, lakehouse.table(fk.references), window, parent.partition_column)
    if rows is None:
        return spark.createDataFrame([], f"`__key_{fk.name}` bigint, `__day_{fk.name}` date")
    return rows.select(
        F.col(fk.references_column).alias(f"__key_{fk.name}"), F.col(parent.partition_column).alias(f"__day_{fk.name}")
    ).distinct()


def _checks_on_written(
    spark: SparkSession,
    lakehouse: Lakehouse,
    table: TableDeclaration,
    catalog: TableCatalog,
    window: PartitionWindow,
    inputs: dict[str, DataFrame],
    written: DataFrame,
    tally: RuleTally,
    quarantined: int,
    report: TableRunReport,
) -> list[CheckOutcome]:
    """Check what was committed: row counts, the contract, conservation and foreign keys, in one Spark pass.

    Each foreign key is a left join of the written rows to the parent's distinct keys, so a row keeps its
    multiplicity and an orphan is a row whose parent columns stay null.
    """
    assert table.contract is not None
    is_current = F.col("is_current") if table.scd2 is not None else F.lit(True)
    contract_columns = list(table.contract.to_schema().columns)
    counters = contract_failure_counters(table, written.columns, is_current)
    profiled = written
    for fk in table.foreign_keys:
        keys = _parent_keys(spark, lakehouse, catalog, fk, window)
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
    current_rows = written.where(is_current).select(*[c for c in contract_columns if c in written.columns])
    outcomes = [
        contract_outcome(
            table,
            current_rows,
            [(condition, int(profile[f"__failing_{i}"])) for i, (condition, _) in enumerate(counters)],
        )
    ]
    if table.has_quarantine:
        unaccounted = tally.rows_in - rows_out - quarantined - tally.duplicates
        outcomes.append(
            CheckOutcome(
                "reconciliation",
                passed=unaccounted == 0,
                description="rows in = rows out + quarantined + duplicates dropped",
                metadata={
                    "rows_in": tally.rows_in,
                    "rows_out": rows_out,
                    "rows_quarantined": quarantined,
                    "duplicates_dropped": tally.duplicates,
                    "rows_unaccounted": unaccounted,
                },
            )
        )
    elif conservation is not None:
        expected = (
            _measure(inputs[conservation.input_alias], conservation.input_measure)
            if conservation.input_alias is not None
            else window.day_count
        )
        actual = int(profile["__output_measure"] or 0)
        outcomes.append(
            CheckOutcome(
                "reconciliation",
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
            )
        )
    outcomes.extend(
        CheckOutcome(
            f"fk_{fk.name}",
            passed=int(profile[f"__orphans_{fk.name}"]) == 0,
            description=f"{fk.column} references {fk.references}.{fk.references_column}",
            metadata={"orphan_rows": int(profile[f"__orphans_{fk.name}"]), "references": str(fk.references)},
        )
        for fk in table.foreign_keys
    )
    return outcomes
