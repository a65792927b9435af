"""Build one Dagster asset, with its checks and docs, from each table declaration."""

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    AssetRecordsFilter,
    AssetsDefinition,
    AutomationCondition,
    BackfillPolicy,
    Backoff,
    DailyPartitionsDefinition,
    FreshnessPolicy,
    Jitter,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    RetryPolicy,
    TableColumn,
    TableSchema,
    asset,
)
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluationTargetMaterializationData

from medallion_assets.framework import checks
from medallion_assets.framework.bronze_ingest import bronze_schema
from medallion_assets.framework.execution import TableCatalog
from medallion_assets.framework.maintenance import maintenance_path
from medallion_assets.framework.partitions import PartitionWindow
from medallion_assets.framework.quality import contract_rules
from medallion_assets.framework.report import split_by_day
from medallion_assets.framework.table import TableDeclaration
from medallion_assets.orchestration.compute import ComputeTarget
from medallion_assets.orchestration.reporting import FailureWithChecks
from medallion_assets.runtime.protocol import DOMAIN_TAG

# Transient failures (a lost executor, a throttled API) are retried; data and contract failures raise
# Failure(allow_retries=False) and failed blocking checks are not user errors, so neither is retried.
TRANSIENT_RETRIES = RetryPolicy(max_retries=2, delay=5, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)


def daily_partitions(days: PartitionWindow) -> DailyPartitionsDefinition:
    """One Dagster partition per day of the span a domain declares."""
    return DailyPartitionsDefinition(start_date=days.start.isoformat(), end_date=days.end.isoformat())


def column_schema(table: TableDeclaration) -> TableSchema:
    if table.source is not None:
        fields = [(f.name, f.dataType.simpleString()) for f in bronze_schema(table.source, table.partition_column)]
    else:
        assert table.contract is not None
        types = {name: f.dtype.simpleString() for name, f in table.contract.fields.items() if f.dtype is not None}
        fields = [(name, types.get(name, "date")) for name in table.output_columns]
    return TableSchema(columns=[TableColumn(name=name, type=kind) for name, kind in fields])


def describe(table: TableDeclaration) -> str:
    lines = [table.description]
    rules = [*contract_rules(table), *table.rules]
    if rules:
        lines += ["", "**Row rules** (severity: rule):"]
        lines += [f"- `{rule.severity}`: `{rule.name}`: {rule.description or rule.condition}" for rule in rules]
    if table.natural_key:
        lines += ["", f"Deduplicated on `{', '.join(table.natural_key)}`."]
    if table.has_quarantine:
        lines += ["", f"Rejected rows go to `{table.quarantine_key}` with `_failed_rules`."]
    return "\n".join(lines)


def check_specs(table: TableDeclaration, partitions_def: PartitionsDefinition) -> list[AssetCheckSpec]:
    key = AssetKey(table.key.path)
    specs = []
    for name in table.check_names:
        fk = next((fk for fk in table.foreign_keys if checks.foreign_key_check(fk.name) == name), None)
        description = (
            f"Every {fk.column} exists in {fk.references}.{fk.references_column}." if fk else checks.DESCRIPTIONS[name]
        )
        # Partitioned like the asset, so each day's check result belongs to that day in the UI and to
        # automation's blocking-check condition.
        specs.append(
            AssetCheckSpec(name=name, asset=key, description=description, blocking=True, partitions_def=partitions_def)
        )
    return specs


def partition_window(context: AssetExecutionContext) -> PartitionWindow:
    # The time window covers a single partition and a single-run backfill's whole range alike.
    window = context.partition_time_window
    return PartitionWindow.from_datetimes(window.start, window.end)


def for_day(metadata: Mapping[str, Any], day: str, days: Sequence[str]) -> dict[str, Any]:
    """A window's check metadata as one day's evaluation carries it: a value keyed by the window's days keeps that
    day's entry only. A year's range run files 365 evaluations per check; each carrying every day's entry cost
    365 x 365 entries per check in the event log and in memory."""
    window_days = set(days)
    sliced: dict[str, Any] = {}
    for key, value in metadata.items():
        entries = getattr(value, "value", value)
        if isinstance(entries, Mapping) and len(window_days) > 1 and set(entries) == window_days:
            sliced[key] = MetadataValue.json({day: entries[day]})
        else:
            sliced[key] = value
    return sliced


def checks_per_day(
    context: AssetExecutionContext, result: MaterializeResult, window: PartitionWindow
) -> Iterator[AssetCheckEvaluation]:
    """A range run's checks judge the whole window; file that verdict under each day of it as well.

    Dagster plans a range run's partitioned checks per day but files the run's own results under no
    partition, which would leave every backfilled day unchecked and hold automation downstream of it.
    Each day's evaluation points at that day's materialization, so Dagster treats it as current.
    """
    asset_key = context.asset_key
    days = [day.isoformat() for day in window.days()]
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=asset_key, asset_partitions=days), limit=len(days)
    ).records
    materialized = {r.partition_key: r for r in records if r.run_id == context.run_id}
    for check_result in result.check_results or []:
        for day in days:
            record = materialized.get(day)
            yield AssetCheckEvaluation(
                asset_key=asset_key,
                check_name=check_result.check_name or "",
                passed=check_result.passed,
                metadata={**for_day(check_result.metadata, day, days), "partition_window": str(window)},
                severity=check_result.severity,
                description=check_result.description,
                blocking=True,
                partition=day,
                target_materialization_data=AssetCheckEvaluationTargetMaterializationData(
                    storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
                )
                if record
                else None,
            )


def file_figures_per_day(context: AssetExecutionContext, result: MaterializeResult) -> MaterializeResult:
    """Each day's quality figures go on that day's materialization, where the UI plots them per partition.

    A range run records one materialization per day; without this, each would carry the window's totals.
    """
    metadata, by_day = split_by_day(result.metadata or {})
    for day, figures in by_day.items():
        context.add_asset_metadata(figures, partition_key=day)
    return MaterializeResult(
        asset_key=result.asset_key,
        metadata=metadata,
        check_results=result.check_results,
        data_version=result.data_version,
        tags=result.tags,
    )


def freshness_policy(table: TableDeclaration) -> FreshnessPolicy | None:
    """The declaration's freshness as Dagster's policy: the daemon evaluates it and the UI shows it."""
    freshness = table.expected_freshness
    if freshness is None:
        return None
    return FreshnessPolicy.time_window(fail_window=freshness.fail_after, warn_window=freshness.warn_after)


def build_table_asset(
    table: TableDeclaration,
    catalog: TableCatalog,
    partitions_def: PartitionsDefinition,
    automation_condition: AutomationCondition | None,
    domain: str,
) -> AssetsDefinition:
    @asset(
        key=AssetKey(table.key.path),
        group_name=table.key.layer,
        partitions_def=partitions_def,
        deps=[AssetDep(AssetKey(upstream.path)) for upstream in table.upstream_keys],
        kinds={"spark", "delta"},
        description=describe(table),
        owners=[table.owner],
        metadata={"dagster/column_schema": column_schema(table), "layer": table.key.layer},
        check_specs=check_specs(table, partitions_def),
        backfill_policy=BackfillPolicy.single_run(),
        retry_policy=TRANSIENT_RETRIES,
        automation_condition=automation_condition,
        freshness_policy=freshness_policy(table),
        tags={"layer": table.key.layer, DOMAIN_TAG: domain},
    )
    def _materialize(
        context: AssetExecutionContext, compute: ComputeTarget
    ) -> Iterator[MaterializeResult | AssetCheckEvaluation]:
        window = partition_window(context)
        try:
            result = compute.materialize(context, table, catalog, window)
        except FailureWithChecks as failure:
            # Judged and not committed: the checks say why, and no materialization is recorded.
            yield from failure.check_results
            raise
        yield file_figures_per_day(context, result)
        if window.day_count > 1:
            yield from checks_per_day(context, result, window)

    return _materialize


MAINTENANCE_GROUP = "maintenance"


def build_maintenance_asset(table: TableDeclaration, domain: str) -> AssetsDefinition:
    """The table's upkeep as an asset of its own: its materialization is one OPTIMIZE and VACUUM of the table."""
    plan = table.maintenance
    zorder = f"Z-ordered by `{', '.join(plan.zorder_by)}`" if plan.zorder_by else "compacted (no Z-order declared)"
    quarantine = f" and its quarantine `{table.quarantine_key}` (compacted)" if table.has_quarantine else ""

    @asset(
        key=AssetKey(maintenance_path(table.key)),
        group_name=MAINTENANCE_GROUP,
        deps=[AssetDep(AssetKey(table.key.path))],
        kinds={"spark", "delta"},
        description=f"Delta maintenance of `{table.key}`{quarantine}: OPTIMIZE, {zorder}, then VACUUM keeping "
        f"{plan.retain_hours} hours of history for time travel and running readers.",
        owners=[table.owner],
        retry_policy=TRANSIENT_RETRIES,
        tags={"layer": MAINTENANCE_GROUP, DOMAIN_TAG: domain},
    )
    def _maintain(context: AssetExecutionContext, compute: ComputeTarget) -> MaterializeResult:
        return compute.maintain(context, table)

    return _maintain


def build_assets(
    domain: str,
    tables: Iterable[TableDeclaration],
    partitions_def: PartitionsDefinition,
    downstream_automation: AutomationCondition | None = None,
) -> Sequence[AssetsDefinition]:
    """Bronze is started by landing sensors; every refined table follows its upstream partitions."""
    tables = list(tables)
    catalog = {table.key: table for table in tables}
    return [
        build_table_asset(
            table, catalog, partitions_def, None if table.key.layer == "bronze" else downstream_automation, domain
        )
        for table in tables
    ]
