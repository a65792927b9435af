"""Turn a TableRunReport into Dagster results, in-process or over Dagster Pipes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dagster import AssetCheckResult, AssetCheckSeverity, AssetKey, Failure, MaterializeResult, MetadataValue

from medallion_assets.framework.maintenance import MaintenanceReport
from medallion_assets.framework.report import TableRunReport


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
            description=outcome.summary if not outcome.passed and outcome.summary else outcome.description,
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


def to_maintenance_result(report: MaintenanceReport) -> MaterializeResult:
    return MaterializeResult(
        asset_key=AssetKey(report.path), metadata={key: metadata_value(value) for key, value in report.metadata.items()}
    )


# In a FailureWithChecks' metadata: the checks that kept the window from being written. The failure alerts leave
# such a step to the checks' own alerts.
BLOCKED_BY_CHECKS = "blocked_by_checks"


class FailureWithChecks(Failure):
    """A materialization that failed after judging its checks: the asset reports them, then fails.

    Raised for a window that a blocking check kept from being committed, so the UI shows which check failed
    and why, and no materialization is recorded.
    """

    def __init__(
        self, description: str, check_results: Sequence[AssetCheckResult], *, allow_retries: bool = False, **kwargs: Any
    ) -> None:
        failed = ",".join(sorted({r.check_name or "" for r in check_results if not r.passed}))
        metadata = {**kwargs.pop("metadata", {}), BLOCKED_BY_CHECKS: failed}
        super().__init__(description=description, allow_retries=allow_retries, metadata=metadata, **kwargs)
        self.check_results = list(check_results)


def blocked(report: TableRunReport) -> FailureWithChecks:
    return FailureWithChecks(str(report.blocked_error()), to_check_results(report))
