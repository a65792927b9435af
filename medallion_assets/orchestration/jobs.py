"""Named jobs an operator runs for a date range, per domain."""

from __future__ import annotations

from collections.abc import Sequence

from dagster import AssetsDefinition, AssetSelection, define_asset_job
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from medallion_assets.framework.lakehouse import LAYERS
from medallion_assets.framework.partitions import PartitionWindow


def partition_range_tags(window: PartitionWindow) -> dict[str, str]:
    """Tags that make one run cover every day of `window` (a single-run backfill)."""
    return {
        ASSET_PARTITION_RANGE_START_TAG: window.start.isoformat(),
        ASSET_PARTITION_RANGE_END_TAG: window.last_day.isoformat(),
    }


def tables_job_name(domain: str) -> str:
    return f"{domain}_tables"


def domain_jobs(domain: str, assets: Sequence[AssetsDefinition]) -> list[UnresolvedAssetJobDefinition]:
    """Every table of a domain, and one job per layer; a domain's tables share one partitions definition."""
    keys = [key for asset in assets for key in asset.keys]
    every_table = AssetSelection.assets(*keys)
    return [
        define_asset_job(
            tables_job_name(domain), selection=every_table, description=f"Every {domain} table, bronze to gold."
        ),
        *[
            define_asset_job(
                f"{domain}_{layer}_layer",
                selection=every_table & AssetSelection.groups(layer),
                description=f"Only the {domain} {layer} tables.",
            )
            for layer in LAYERS
        ],
    ]
