"""The checks judged on a table's output before it is committed: contract, reconciliation, foreign keys."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from medallion_assets.framework import checks
from medallion_assets.framework.build import Build, measure
from medallion_assets.framework.delta_io import read_window
from medallion_assets.framework.local_frames import empty_frame
from medallion_assets.framework.quality import CheckOutcome, contract_failure_counters, contract_outcome
from medallion_assets.framework.report import Meta, TableRunReport
from medallion_assets.framework.table import Conservation, TableDeclaration, TableKey

if TYPE_CHECKING:
    from medallion_assets.framework.refined_build import RuleTally


def source_schema_outcome(delivered: set[str], expected: Sequence[str]) -> CheckOutcome:
    """Judge the columns the landed files delivered (from bronze's `_source_columns`) against the contract."""
    missing = sorted(set(expected) - delivered) if delivered else []
    extra = sorted(delivered - set(expected))
    if missing:
        return CheckOutcome(
            checks.SOURCE_SCHEMA,
            passed=False,
            description=checks.DESCRIPTIONS[checks.SOURCE_SCHEMA],
            metadata={"missing_columns": missing, "unexpected_columns": extra},
            summary=f"the landed files lack column(s) {', '.join(missing)}",
        )
    return CheckOutcome(
        checks.SOURCE_SCHEMA,
        passed=not extra,
        severity="WARN",
        description=checks.DESCRIPTIONS[checks.SOURCE_SCHEMA],
        metadata={"missing_columns": [], "unexpected_columns": extra},
    )


def _parent_keys(build: Build, fk_references: TableKey, references_column: str, name: str) -> DataFrame:
    """The distinct (key, day) pairs of a foreign key's parent in the window, named apart from any child column."""
    parent = build.catalog[fk_references]
    rows = read_window(build.spark, build.lakehouse.table(fk_references), build.window, parent.partition_column)
    if rows is None:
        return empty_frame(
            build.spark,
            T.StructType([T.StructField(f"__key_{name}", T.LongType()), T.StructField(f"__day_{name}", T.DateType())]),
        )
    return rows.select(
        F.col(references_column).alias(f"__key_{name}"), F.col(parent.partition_column).alias(f"__day_{name}")
    ).distinct()


def with_parent_keys(build: Build, rows: DataFrame) -> DataFrame:
    """`rows`, each left-joined to its foreign keys' parent keys of the window.

    The parent side holds distinct (key, day) pairs, so a row keeps its multiplicity and an orphan is a row
    whose parent columns stay null.
    """
    table = build.table
    for fk in table.foreign_keys:
        keys = _parent_keys(build, fk.references, fk.references_column, fk.name)
        rows = rows.join(
            keys,
            (F.col(fk.column) == F.col(f"__key_{fk.name}"))
            & (F.col(table.partition_column) == F.col(f"__day_{fk.name}")),
            "left",
        )
    return rows


def _is_current(table: TableDeclaration) -> Column:
    """The rows a table holds as current: under SCD2 the open versions, otherwise every row."""
    return F.col("is_current") if table.scd2 is not None else F.lit(True)


def _conservation(table: TableDeclaration) -> Conservation | None:
    """The declared conservation, judged where no quarantine reconciles the rows instead."""
    return table.conservation if not table.has_quarantine else None


def output_aggregates(table: TableDeclaration, columns: Sequence[str]) -> list[Column]:
    """What the output checks count over the rows to be written: rows, contract failures, orphans, the measure.

    Evaluated over `with_parent_keys` of those rows, alone or as one group of a larger aggregation.
    """
    is_current = _is_current(table)
    counters = contract_failure_counters(table, columns, is_current)
    conservation = _conservation(table)
    return [
        F.count(F.lit(1)).alias("__rows"),
        F.count_if(is_current).alias("__current_rows"),
        *[counter.alias(f"__failing_{i}") for i, (_, counter) in enumerate(counters)],
        *[
            F.count_if(F.col(fk.column).isNotNull() & F.col(f"__key_{fk.name}").isNull()).alias(f"__orphans_{fk.name}")
            for fk in table.foreign_keys
        ],
        *([F.expr(conservation.output_measure).alias("__output_measure")] if conservation is not None else []),
    ]


def profile_output(
    build: Build, inputs: dict[str, DataFrame], output: DataFrame, tally: RuleTally, report: TableRunReport
) -> dict[str, int]:
    """Judge the rows about to be written in a Spark pass of their own (see `judge_output`)."""
    profile = with_parent_keys(build, output).agg(*output_aggregates(build.table, output.columns)).first()
    return judge_output(build, inputs, output, profile.asDict() if profile is not None else None, tally, report)


def judge_output(
    build: Build,
    inputs: dict[str, DataFrame],
    output: DataFrame,
    profile: Mapping[str, Any] | None,
    tally: RuleTally,
    report: TableRunReport,
) -> dict[str, int]:
    """The contract, conservation and foreign key checks, from `output_aggregates` counted over the output.

    `profile` is None when the output holds no rows.
    """
    table, window = build.table, build.window
    assert table.contract is not None
    is_current = _is_current(table)
    contract_columns = table.contract.columns()
    counters = contract_failure_counters(table, output.columns, is_current)
    profile = profile if profile is not None else {}
    conservation = _conservation(table)

    def counted(name: str) -> int:
        return int(profile.get(name) or 0)

    rows_out = counted("__current_rows")
    report.metadata[Meta.ROWS_OUT] = rows_out
    if table.scd2 is not None:
        report.metadata["history_rows_closed"] = counted("__rows") - rows_out
    current_rows = output.where(is_current).select(*[c for c in contract_columns if c in output.columns])
    report.checks.append(
        contract_outcome(
            table, current_rows, [(condition, counted(f"__failing_{i}")) for i, (condition, _) in enumerate(counters)]
        )
    )
    if table.has_quarantine:
        quarantined, duplicates, superseded = (tally.total(m) for m in ("quarantined", "duplicates", "superseded"))
        unaccounted = tally.total("rows_in") - rows_out - quarantined - duplicates - superseded
        report.checks.append(
            CheckOutcome(
                checks.RECONCILIATION,
                passed=unaccounted == 0,
                description=checks.DESCRIPTIONS[checks.RECONCILIATION],
                metadata={
                    Meta.ROWS_IN: tally.total("rows_in"),
                    Meta.ROWS_OUT: rows_out,
                    Meta.ROWS_QUARANTINED: quarantined,
                    Meta.DUPLICATES_DROPPED: duplicates,
                    Meta.ROWS_SUPERSEDED: superseded,
                    "rows_unaccounted": unaccounted,
                },
                summary=f"{unaccounted} row(s) are unaccounted for",
            )
        )
    elif conservation is not None:
        expected = (
            measure(inputs[conservation.input_alias], conservation.input_measure)
            if conservation.input_alias is not None
            else window.day_count
        )
        actual = counted("__output_measure")
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
        orphans = counted(f"__orphans_{fk.name}")
        report.checks.append(
            CheckOutcome(
                checks.foreign_key_check(fk.name),
                passed=orphans == 0,
                description=f"{fk.column} references {fk.references}.{fk.references_column}",
                metadata={"orphan_rows": orphans, "references": str(fk.references)},
                summary=f"{orphans} row(s) reference no {fk.references} row",
            )
        )
    return {"rows": counted("__rows")}
