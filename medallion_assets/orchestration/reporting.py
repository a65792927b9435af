"""Turn a TableRunReport into Dagster results, in-process or over Dagster Pipes."""

from __future__ import annotations

from typing import Any

from dagster import AssetCheckResult, AssetCheckSeverity, AssetKey, MaterializeResult, MetadataValue

from medallion_assets.framework.execution import TableRunReport


def metadata_value(value: Any) -> Any:
    if isinstance(value, list | dict):
        return MetadataValue.json(value)
    return value


def to_check_results(report: TableRunReport) -> list[AssetCheckResult]:
    return [
        AssetCheckResult(
            asset_key=AssetKey(report.table.path),
            check_name=outcome.name,
            passed=outcome.passed,
            severity=AssetCheckSeverity(outcome.severity),
            description=outcome.description,
            metadata={key: metadata_value(value) for key, value in outcome.metadata.items()},
        )
        for outcome in report.checks
    ]


def to_materialize_result(report: TableRunReport) -> MaterializeResult:
    return MaterializeResult(
        asset_key=AssetKey(report.table.path),
        metadata={key: metadata_value(value) for key, value in report.metadata.items()},
        check_results=to_check_results(report),
    )
