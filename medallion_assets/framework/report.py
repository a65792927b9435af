"""What a build reports: plain values that travel from the task to Dagster, in-process or over Pipes.

The metadata keys here are read by more than one side (the asset factory, sensors, tests and operators), so
each is spelled once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from medallion_assets.framework.errors import BlockingChecksFailed
from medallion_assets.framework.partitions import PartitionWindow
from medallion_assets.framework.quality import CheckOutcome
from medallion_assets.framework.table import TableKey


class Meta:
    """Materialization metadata keys."""

    ROWS_IN = "rows_in"
    ROWS_OUT = "rows_out"
    ROWS_QUARANTINED = "rows_quarantined"
    DUPLICATES_DROPPED = "duplicates_dropped"
    ROWS_SUPERSEDED = "rows_superseded"
    ROWS_WARNED = "rows_warned"
    RULE_FAILURES_PREFIX = "rule_failures/"
    PARTITION_WINDOW = "partition_window"
    PARTITION_DAYS = "partition_days"
    DURATION_S = "duration_s"
    DELTA_VERSION = "delta_version"
    TABLE = "table"
    QUARANTINE_TABLE = "quarantine_table"
    QUARANTINE_DELTA_VERSION = "quarantine_delta_version"
    BUILD_ID = "build"
    LANDING_FINGERPRINTS = "landing_fingerprints"
    ACCEPTED_CHECKS = "accepted_checks"
    # In a check's metadata: who accepted its failure.
    ACCEPTED_BY_OPERATOR = "accepted_by_operator"
    # A silver day's share of rows sent to quarantine, and the figures of each day of the window: {day: {key: n}}.
    # Dagster files each day's figures on that day's materialization, which is what the UI plots per partition.
    QUARANTINE_RATE = "quarantine_rate"
    BY_DAY = "by_day"
    # The prefix of a day's own figure, beside the window's total of the same name.
    DAY_PREFIX = "day/"

    @staticmethod
    def rule_failures(rule: str) -> str:
        return Meta.RULE_FAILURES_PREFIX + rule

    @staticmethod
    def of_day(key: str) -> str:
        return Meta.DAY_PREFIX + key


def split_by_day(metadata: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """A window's metadata without its per-day figures, and those figures by day, as each day's materialization
    carries them. The figures may arrive raw (a build's report) or wrapped in Dagster's JSON metadata value."""
    window_metadata = dict(metadata)
    by_day = window_metadata.pop(Meta.BY_DAY, None)
    return window_metadata, dict(getattr(by_day, "value", by_day) or {})


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
