"""Report a TableRunReport from the remote side over Dagster Pipes (no dagster import needed)."""

from __future__ import annotations

from typing import Any

from medallion_assets.framework.maintenance import MaintenanceReport
from medallion_assets.framework.report import TableRunReport


def _pipes_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    typed = {}
    for key, value in metadata.items():
        if isinstance(value, bool):
            typed[key] = {"raw_value": value, "type": "bool"}
        elif isinstance(value, int):
            typed[key] = {"raw_value": value, "type": "int"}
        elif isinstance(value, float):
            typed[key] = {"raw_value": value, "type": "float"}
        elif isinstance(value, list | dict):
            typed[key] = {"raw_value": value, "type": "json"}
        else:
            typed[key] = {"raw_value": str(value), "type": "text"}
    return typed


def report_checks_over_pipes(pipes: Any, report: TableRunReport) -> None:
    asset_key = "/".join(report.table.path)
    for outcome in report.checks:
        pipes.report_asset_check(
            check_name=outcome.name,
            passed=outcome.passed,
            severity=outcome.severity,
            metadata=_pipes_metadata(outcome.metadata),
            asset_key=asset_key,
        )


def report_materialization_over_pipes(pipes: Any, report: TableRunReport) -> None:
    pipes.report_asset_materialization(metadata=_pipes_metadata(report.metadata), asset_key="/".join(report.table.path))


def report_maintenance_over_pipes(pipes: Any, report: MaintenanceReport) -> None:
    pipes.report_asset_materialization(metadata=_pipes_metadata(report.metadata), asset_key="/".join(report.path))
