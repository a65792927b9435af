"""Named jobs an operator runs for a date range."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from medallion_assets.framework.lakehouse import LAYERS
from medallion_assets.framework.partitions import PartitionWindow

ALL_TABLES_JOB = "all_tables"


def partition_range_tags(window: PartitionWindow) -> dict[str, str]:
    """Tags that make one run cover every day of `window` (a single-run backfill)."""
    return {
        ASSET_PARTITION_RANGE_START_TAG: window.start.isoformat(),
        ASSET_PARTITION_RANGE_END_TAG: window.last_day.isoformat(),
    }


all_tables_job = define_asset_job(
    ALL_TABLES_JOB, selection=AssetSelection.all(), description="Every table, bronze to gold."
)
layer_jobs = [
    define_asset_job(f"{layer}_layer", selection=AssetSelection.groups(layer), description=f"Only the {layer} tables.")
    for layer in LAYERS
]
JOBS = [all_tables_job, *layer_jobs]
